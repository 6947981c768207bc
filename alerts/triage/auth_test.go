package triage

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
)

func TestAuthorizer(t *testing.T) {
	srv := slacktest.NewServer(t)
	srv.SetUsergroup("S0ONCALL", "U0GROUPIE")
	srv.SetChannelMembers("C0SECOPS", "U0CHANNEL")
	api := slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL()), slack.OptionHTTPClient(srv.Client()))
	a := newAuthorizer(api, Config{AllowedUsers: []string{"U0LISTED"}, AllowedUsergroups: []string{"S0ONCALL"}, AllowedChannels: []string{"C0SECOPS"},
		MembershipTTL: time.Minute, Timeout: time.Second})
	tests := []struct {
		user string
		want bool
	}{
		{"U0LISTED", true}, {"U0GROUPIE", true}, {"U0CHANNEL", true}, {"U0STRANGER", false}, {"", false},
	}
	for _, tt := range tests {
		got, err := a.allowed(context.Background(), tt.user)
		if got != tt.want || err != nil {
			t.Errorf("allowed(%q) = %v, %v; want %v", tt.user, got, err, tt.want)
		}
	}
	// Memberships are cached: a member removed in Slack keeps access for
	// the TTL, and no more calls are made.
	calls := len(srv.Requests())
	srv.SetChannelMembers("C0SECOPS")
	if ok, _ := a.allowed(context.Background(), "U0CHANNEL"); !ok || len(srv.Requests()) != calls {
		t.Errorf("cache not used: ok=%v, %d new calls", ok, len(srv.Requests())-calls)
	}
	// A group that cannot be read (unknown, missing scope): refused, with
	// the error; listed users still pass.
	b := newAuthorizer(api, Config{AllowedUsers: []string{"U0LISTED"}, AllowedUsergroups: []string{"S0GONE"}, MembershipTTL: time.Minute, Timeout: time.Second})
	if ok, err := b.allowed(context.Background(), "U0GROUPIE"); ok || err == nil {
		t.Errorf("unreadable group: ok=%v err=%v, want refused with an error", ok, err)
	}
	if ok, _ := b.allowed(context.Background(), "U0LISTED"); !ok {
		t.Errorf("a listed user was refused")
	}
}

// TestRunRefusedAppToken: Slack refusing the app-level token ends Run with
// an error that names the refusal and not the token.
func TestRunRefusedAppToken(t *testing.T) {
	srv := slacktest.NewServer(t)
	srv.RequireAppToken("xapp-1-A0-1-the-right-one")
	wrong := "xapp-1-A0-1-a-wrong-one-0123456789"
	r, err := New(Config{AppToken: wrong, BotToken: "xoxb-1-2-3", APIURL: srv.APIURL(), HTTPClient: srv.Client(), AllowedUsers: []string{"U1"}},
		Deps{Actions: nopStore{}, Findings: nopStore{}, Silences: nopStore{}, Keys: nopStore{}, Usage: nopStore{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || strings.Contains(err.Error(), wrong) {
		t.Fatalf("Run: %v, want an invalid_auth error without the token", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run kept retrying a refused token")
	}
	if _, err := New(Config{AppToken: "xoxb-not-an-app-token", BotToken: "xoxb-1", AllowedUsers: []string{"U1"}},
		Deps{Actions: nopStore{}, Findings: nopStore{}, Silences: nopStore{}, Keys: nopStore{}, Usage: nopStore{}}); err == nil || strings.Contains(err.Error(), "not-an-app") {
		t.Errorf("a bot token as app token: %v", err)
	}
}

type nopStore struct{}

func (nopStore) RecordAction(context.Context, Action) error                      { return nil }
func (nopStore) ActionRecorded(context.Context, string) (bool, error)            { return false, nil }
func (nopStore) Finding(context.Context, string) (*detect.Finding, error)        { return nil, nil }
func (nopStore) SetFindingStatus(context.Context, detect.Finding, string) error  { return nil }
func (nopStore) AddSilence(context.Context, alerts.Silence) error                { return nil }
func (nopStore) Silences(context.Context, time.Time) ([]alerts.Silence, error)   { return nil, nil }
func (nopStore) All(context.Context) ([]keys.Key, error)                         { return nil, nil }
func (nopStore) Build(context.Context, summary.Options) (*summary.Report, error) { return nil, nil }
