package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/triage"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
)

// InteractiveConfig is alerts.slack.interactive: triage from Slack over
// Socket Mode (alerts/triage, docs/slack.md). It is on when enabled and an
// app-level token is set (AUDITWATCH_SLACK_APP_TOKEN or app_token_file);
// without a token nothing changes: no buttons, no connection.
type InteractiveConfig struct {
	Enabled      bool   `yaml:"enabled"`
	AppTokenFile string `yaml:"app_token_file"` // or AUDITWATCH_SLACK_APP_TOKEN (xapp-…)
	// Who may silence, mark expected, resolve and use /auditwatch key and
	// silences: users (U…/W…), members of user groups (S…), members of
	// channels (C…/G…). Acknowledge is open to everyone in the channel.
	AllowedUsers      []string      `yaml:"allowed_users"`
	AllowedUsergroups []string      `yaml:"allowed_usergroups"`
	AllowedChannels   []string      `yaml:"allowed_channels"`
	MembershipTTL     time.Duration `yaml:"membership_ttl"` // how long group and channel memberships are cached

	appToken string // loaded secret
}

// on reports whether triage runs: enabled, with an app-level token and a
// bot token.
func (c InteractiveConfig) on(s SlackConfig) bool {
	return c.Enabled && c.appToken != "" && s.token != ""
}

var (
	slackUserID    = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	slackGroupID   = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	slackChannelID = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
)

// validate checks alerts.slack.interactive; its errors never hold a token.
func (c InteractiveConfig) validate(s SlackConfig) []error {
	if !c.Enabled {
		return nil
	}
	const p = "alerts.slack.interactive"
	var errs []error
	switch {
	case c.appToken == "":
		errs = append(errs, errors.New(p+".enabled: set the app-level token (AUDITWATCH_SLACK_APP_TOKEN or "+p+".app_token_file), or enabled: false"))
	case len(c.appToken) < 5 || c.appToken[:5] != "xapp-":
		errs = append(errs, errors.New(p+": the app-level token must start with xapp- (Basic Information → App-Level Tokens, scope connections:write)"))
	}
	if s.token == "" {
		errs = append(errs, errors.New(p+": needs a bot token (AUDITWATCH_SLACK_TOKEN or alerts.slack.token_file); a webhook cannot receive button presses"))
	}
	if len(c.AllowedUsers)+len(c.AllowedUsergroups)+len(c.AllowedChannels) == 0 {
		errs = append(errs, errors.New(p+": set allowed_users, allowed_usergroups or allowed_channels: who may silence, mark expected and resolve"))
	}
	check := func(field string, ids []string, re *regexp.Regexp, want string) {
		for i, id := range ids {
			if !re.MatchString(id) {
				errs = append(errs, fmt.Errorf("%s.%s[%d] %q: want a Slack %s id", p, field, i, id, want))
			}
		}
	}
	check("allowed_users", c.AllowedUsers, slackUserID, "user (U…)")
	check("allowed_usergroups", c.AllowedUsergroups, slackGroupID, "user group (S…)")
	check("allowed_channels", c.AllowedChannels, slackChannelID, "channel (C… or G…)")
	if c.MembershipTTL < 0 {
		errs = append(errs, fmt.Errorf("%s.membership_ttl %s: negative", p, c.MembershipTTL))
	}
	return errs
}

// startTriage starts the Slack triage runner (alerts.slack.interactive)
// until ctx ends or the returned stop function is called; stop waits for
// the runner to finish the interaction in hand.
// detect calls it once per term of work — with detect.ha, only while
// leading — so one connection answers the buttons. When triage is off it
// does nothing. A runner that fails (Slack refuses the app-level token) is
// logged; detection and delivery go on.
func startTriage(ctx context.Context, cfg Config, conn driver.Conn, log *slog.Logger) (stop func()) {
	ic, sc := cfg.Alerts.Slack.Interactive, cfg.Alerts.Slack
	if !cfg.Alerts.Enabled || !ic.on(sc) {
		return func() {}
	}
	db := cfg.ClickHouse.Database
	ks := keys.NewStore(conn, db)
	ts := triage.NewStore(conn, db)
	apiURL := ""
	if sc.AllowCustomAPIURL {
		apiURL = sc.APIURL
	}
	r, err := triage.New(triage.Config{AppToken: ic.appToken, BotToken: sc.token, APIURL: apiURL, Timeout: sc.Timeout,
		AllowedUsers: ic.AllowedUsers, AllowedUsergroups: ic.AllowedUsergroups, AllowedChannels: ic.AllowedChannels,
		MembershipTTL: ic.MembershipTTL, Logger: log.With("component", "slack-triage")},
		triage.Deps{Actions: ts, Findings: ts, Silences: alerts.NewStore(conn, db), Keys: ks, Usage: summary.NewBuilder(conn, db, ks)})
	if err != nil {
		log.Error("slack triage not started", "err", err)
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		log.Info("slack triage: answering alert buttons and /auditwatch over Socket Mode",
			"allowed_users", len(ic.AllowedUsers), "allowed_usergroups", len(ic.AllowedUsergroups), "allowed_channels", len(ic.AllowedChannels))
		if err := r.Run(ctx); err != nil {
			log.Error("slack triage stopped: alert buttons go unanswered until detect restarts", "err", err)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}
