package triage

import (
	"context"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
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
