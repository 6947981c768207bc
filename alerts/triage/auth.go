package triage

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// authorizer says whether a Slack user may act: listed, or a member of a
// listed user group or channel. Memberships are read through the Web API
// (usergroups.users.list needs usergroups:read; conversations.members needs
// channels:read, or groups:read for a private channel) and cached.
type authorizer struct {
	api      *slack.Client
	users    []string
	groups   []string
	channels []string
	ttl      time.Duration
	timeout  time.Duration

	mu    sync.Mutex
	cache map[string]membership // "g:S…" or "c:C…" → members
}

type membership struct {
	at      time.Time
	members map[string]bool
}

func newAuthorizer(api *slack.Client, cfg Config) *authorizer {
	return &authorizer{api: api, users: cfg.AllowedUsers, groups: cfg.AllowedUsergroups, channels: cfg.AllowedChannels,
		ttl: cfg.MembershipTTL, timeout: cfg.Timeout, cache: map[string]membership{}}
}

// allowed reports whether user may act. A membership that cannot be read
// (missing scope, Slack down) is an error and the user is refused; the other
// lists are still checked first.
func (a *authorizer) allowed(ctx context.Context, user string) (bool, error) {
	if user == "" {
		return false, nil
	}
	if slices.Contains(a.users, user) {
		return true, nil
	}
	var firstErr error
	check := func(key string, read func(context.Context) ([]string, error)) bool {
		m, err := a.members(ctx, key, read)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return false
		}
		return m[user]
	}
	for _, g := range a.groups {
		g := g
		if check("g:"+g, func(ctx context.Context) ([]string, error) { return a.api.GetUserGroupMembersContext(ctx, g) }) {
			return true, nil
		}
	}
	for _, c := range a.channels {
		c := c
		if check("c:"+c, func(ctx context.Context) ([]string, error) { return a.channelMembers(ctx, c) }) {
			return true, nil
		}
	}
	return false, firstErr
}

func (a *authorizer) members(ctx context.Context, key string, read func(context.Context) ([]string, error)) (map[string]bool, error) {
	a.mu.Lock()
	m, ok := a.cache[key]
	a.mu.Unlock()
	if ok && time.Since(m.at) < a.ttl {
		return m.members, nil
	}
	rctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	ids, err := read(rctx)
	if err != nil {
		return nil, fmt.Errorf("read members of %s: %w", key[2:], err)
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	a.mu.Lock()
	a.cache[key] = membership{at: time.Now(), members: set}
	a.mu.Unlock()
	return set, nil
}

// channelMembers reads every page of conversations.members.
func (a *authorizer) channelMembers(ctx context.Context, channel string) ([]string, error) {
	var all []string
	cursor := ""
	for range 100 {
		ids, next, err := a.api.GetUsersInConversationContext(ctx, &slack.GetUsersInConversationParameters{ChannelID: channel, Cursor: cursor, Limit: 1000})
		if err != nil {
			return nil, err
		}
		all = append(all, ids...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
	return all, nil
}
