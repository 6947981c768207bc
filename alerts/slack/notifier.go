package slack

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
)

// Notifier delivers alerts.Messages to Slack through the Web API (bot
// token) or an incoming webhook. It is safe for concurrent use and does not
// retry: that is the dispatcher's job, guided by the *alerts.DeliveryError
// Notify returns.
type Notifier struct {
	cfg     Config
	api     *slack.Client // nil in webhook mode
	client  *http.Client
	timeout time.Duration
	log     *slog.Logger
	scrub   *scrubber
}

var _ alerts.Notifier = (*Notifier)(nil)

// Name returns "slack".
func (n *Notifier) Name() string { return "slack" }

// Webhook reports whether n posts to an incoming webhook. Webhooks post to
// their own fixed channel, cannot thread or update, and Notify returns an
// empty Receipt: a dispatcher must not expect to thread repeats.
func (n *Notifier) Webhook() bool { return n.api == nil }

// Interactive reports whether n adds the triage buttons to alerts
// (Config.Interactive).
func (n *Notifier) Interactive() bool { return n.cfg.Interactive }

// Notify delivers m.
//
// With a bot token it posts m (blocks and notification text, see Render) to
// m.Channel with chat.postMessage, as a reply in the thread m.ThreadTS when
// that is set (also shown in the channel, reply_broadcast, when m.Broadcast
// is set), and returns the channel id and ts Slack answered. When
// m.UpdateTS is set and the post succeeded, it then edits that message (in
// the channel the post landed in) with chat.update to show m's state —
// still happening, resolved. The reply is what matters: a failed update is
// logged and passed to Config.OnUpdateError, and Notify still succeeds.
//
// With a webhook it posts a standalone message (repeats and resolutions say
// so in their text, since there is no thread) and returns an empty Receipt;
// m.Channel, m.ThreadTS and m.UpdateTS are ignored.
//
// Each request is bounded by Config.Timeout and by ctx. Failures are
// *alerts.DeliveryError: rate limits (Code "rate_limited", with RetryAfter
// when Slack said), 5xx ("http_503"), timeouts ("timeout"), network errors
// ("network") and a cancelled ctx ("canceled") have Retry set; Slack's
// errors ("channel_not_found", "invalid_auth", "not_in_channel",
// "msg_too_long", "invalid_blocks", …) and other 4xx do not. No error or
// log line contains the token, the webhook URL or a full API key.
func (n *Notifier) Notify(ctx context.Context, m *alerts.Message) (alerts.Receipt, error) {
	if m == nil {
		return alerts.Receipt{}, &alerts.DeliveryError{Err: errors.New("slack: nil message"), Code: "invalid_message"}
	}
	if n.api == nil {
		return alerts.Receipt{}, n.postWebhook(ctx, m)
	}
	return n.postBot(ctx, m)
}

// postBot posts m with the Web API, then updates the parent.
func (n *Notifier) postBot(ctx context.Context, m *alerts.Message) (alerts.Receipt, error) {
	if m.Channel == "" {
		return alerts.Receipt{}, &alerts.DeliveryError{Err: errors.New("slack: message without a channel"), Code: "no_channel"}
	}
	blocks, text := Render(m)
	if n.cfg.Interactive {
		blocks, text = RenderInteractive(m)
	}
	opts := []slack.MsgOption{
		slack.MsgOptionText(text, false),
		slack.MsgOptionBlocks(blocks...),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl(),
	}
	if m.ThreadTS != "" {
		opts = append(opts, slack.MsgOptionTS(m.ThreadTS))
		if m.Broadcast {
			// An escalation: the reply also shows in the channel, with
			// its mention.
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	}
	rctx, p, cancel := n.request(ctx)
	channel, ts, msg, err := n.api.PostMessageWithResponseContext(rctx, m.Channel, opts...)
	cancel()
	if err != nil {
		return alerts.Receipt{}, n.classify(ctx, "post message to "+m.Channel, err, p)
	}
	if m.ThreadTS != "" && msg.Timestamp != "" && msg.ThreadTimestamp == "" {
		// Slack posts a reply to a deleted parent as a new message.
		n.log.Warn("slack: thread reply was posted outside its thread (parent deleted?)",
			"rule", m.RuleID, "channel", channel, "thread_ts", m.ThreadTS, "ts", ts)
	}
	if m.UpdateTS != "" {
		// chat.update wants a channel id; the post's answer has it even
		// when m.Channel is a name.
		updCh := channel
		if updCh == "" {
			updCh = m.Channel
		}
		n.updateParent(ctx, m, updCh)
	}
	return alerts.Receipt{Channel: channel, TS: ts}, nil
}

// updateParent edits m.UpdateTS in channel to show m's state; failures are
// logged and reported to Config.OnUpdateError.
func (n *Notifier) updateParent(ctx context.Context, m *alerts.Message, channel string) {
	blocks, text := renderParent(m, n.cfg.Interactive)
	rctx, p, cancel := n.request(ctx)
	_, _, _, err := n.api.UpdateMessageContext(rctx, channel, m.UpdateTS,
		slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	cancel()
	if err == nil {
		return
	}
	de := n.classify(ctx, "update message "+m.UpdateTS+" in "+channel, err, p)
	n.log.Warn("slack: update of the parent message failed; the reply was posted",
		"rule", m.RuleID, "channel", channel, "ts", m.UpdateTS, "code", de.Code, "err", de.Error())
	if n.cfg.OnUpdateError != nil {
		n.cfg.OnUpdateError(m, de)
	}
}

// postWebhook posts m, standalone, to the webhook.
func (n *Notifier) postWebhook(ctx context.Context, m *alerts.Message) error {
	sm := *m
	sm.ThreadTS, sm.UpdateTS = "", "" // no threads with webhooks
	blocks, text := Render(&sm)
	no := false
	msg := &slack.WebhookMessage{
		Text:        text,
		Blocks:      &slack.Blocks{BlockSet: blocks},
		UnfurlLinks: &no,
		UnfurlMedia: &no,
	}
	rctx, p, cancel := n.request(ctx)
	defer cancel()
	if err := slack.PostWebhookCustomHTTPContext(rctx, n.cfg.WebhookURL, n.client, msg); err != nil {
		return n.classify(ctx, "post to webhook", err, p)
	}
	return nil
}

// request returns the context of one request: bounded by the timeout and
// carrying a probe for its answer.
func (n *Notifier) request(ctx context.Context) (context.Context, *probe, context.CancelFunc) {
	p := &probe{}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, probeKey{}, p), n.timeout)
	return rctx, p, cancel
}
