package alerts

import (
	"context"
	"fmt"
	"strings"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Attachment is a file sent with a report.
type Attachment struct {
	Name  string // file name, e.g. usage-24h-20261127-08.html
	Title string
	Data  []byte
	Path  string // where it was also written, if anywhere
}

// ReportPoster posts a text report (a usage digest) with attachments to a
// channel. Slack uploads the files into the digest's thread (bot token,
// files:write); a webhook posts the text only; the console prints the text
// and the files' paths.
type ReportPoster interface {
	PostReport(ctx context.Context, channel, text string, files []Attachment) error
}

// PostReport implements ReportPoster.
func (c *Console) PostReport(_ context.Context, channel, text string, files []Attachment) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "── report → %s\n%s", channel, secret.Redact(text))
	for _, f := range files {
		where := f.Path
		if where == "" {
			where = "(not written)"
		}
		fmt.Fprintf(&b, "   attached %s: %s (%d bytes)\n", f.Name, where, len(f.Data))
	}
	_, err := fmt.Fprint(c.w, b.String())
	return err
}
