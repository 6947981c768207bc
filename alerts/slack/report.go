package slack

import (
	"bytes"
	"context"
	"errors"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

var _ alerts.ReportPoster = (*Notifier)(nil)

// PostReport posts text (Slack mrkdwn) to channel and, with a bot token,
// uploads the files into the message's thread (needs the files:write
// scope). A webhook cannot upload files: it posts the text only, with a note
// saying where the files were written. Errors are *alerts.DeliveryError,
// classified like Notify's.
func (n *Notifier) PostReport(ctx context.Context, channel, text string, files []alerts.Attachment) error {
	text = secret.Redact(text)
	if n.api == nil {
		for _, f := range files {
			if f.Path != "" {
				text += "\nFull report: `" + f.Path + "` (attachments need a bot token)"
				break
			}
		}
		rctx, p, cancel := n.request(ctx)
		defer cancel()
		no := false
		if err := slack.PostWebhookCustomHTTPContext(rctx, n.cfg.WebhookURL, n.client, &slack.WebhookMessage{Text: text, UnfurlLinks: &no}); err != nil {
			return n.classify(ctx, "post report to the webhook", err, p)
		}
		return nil
	}
	if channel == "" {
		return &alerts.DeliveryError{Err: errors.New("slack: report without a channel"), Code: "no_channel"}
	}
	rctx, p, cancel := n.request(ctx)
	ch, ts, err := n.api.PostMessageContext(rctx, channel, slack.MsgOptionText(text, false), slack.MsgOptionDisableLinkUnfurl())
	cancel()
	if err != nil {
		return n.classify(ctx, "post report to "+channel, err, p)
	}
	for _, f := range files {
		rctx, p, cancel := n.request(ctx)
		_, err := n.api.UploadFileContext(rctx, slack.UploadFileParameters{
			Reader: bytes.NewReader(f.Data), FileSize: len(f.Data), Filename: f.Name, Title: f.Title,
			Channel: ch, ThreadTimestamp: ts,
		})
		cancel()
		if err != nil {
			return n.classify(ctx, "upload "+f.Name+" to "+channel, err, p)
		}
	}
	return nil
}
