package triage

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Action kinds (alert_actions.action).
const (
	KindAcknowledge = "acknowledge"
	KindSilenceKey  = "silence_key"
	KindSilenceRule = "silence_rule"
	KindExpected    = "expected"
	KindResolve     = "resolve"
)

// Finding statuses set by triage (findings.status): the finding is closed
// and no longer counts as open (usage summaries, the slash command).
const (
	StatusExpected = "expected"
	StatusResolved = "resolved"
)

// KeySilence is how long "Silence this key 24 h" silences.
const KeySilence = 24 * time.Hour

// Action is one row of alert_actions: what a Slack user did to a finding.
type Action struct {
	ID            string
	At            time.Time
	FindingID     string
	RuleID        string
	GroupKey      string
	Kind          string
	SlackUser     string // user id (U…)
	SlackChannel  string // channel id of the alert message
	SlackTS       string // ts of the alert message
	Reason        string // masked
	SilenceID     string
	EndsAt        time.Time // end of the silence; zero when none
	FindingStatus string    // status given to the finding; "" when unchanged
}

// actionID derives an action's id from the parts that identify one
// interaction, so that a redelivered interaction has the same id.
func actionID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "act_" + hex.EncodeToString(h[:8])
}

// silenceID derives the id of the silence an action creates from the
// action's id: a retried action writes the same silence again (silences is
// a ReplacingMergeTree on silence_id), never a second one.
func silenceID(action string) string {
	h := sha256.Sum256([]byte("silence\x00" + action))
	return "sil_" + hex.EncodeToString(h[:6])
}

// RequiredScopes are the bot token scopes triage uses: chat:write (thread
// notes, message updates, ephemeral answers), commands (/auditwatch),
// usergroups:read (allowed user groups), channels:read and groups:read
// (members of allowed public and private channels). The app-level token
// needs connections:write.
var RequiredScopes = []string{"chat:write", "commands", "usergroups:read", "channels:read", "groups:read"}

// SlashCommand is the slash command triage answers.
const SlashCommand = "/auditwatch"
