package summary

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
)

// Schedule is one scheduled review: a cron spec (robfig/cron, seconds
// optional), the period, the formats of the files, and the channel of the
// digest.
type Schedule struct {
	Cron    string   `yaml:"cron"`
	Period  string   `yaml:"period"`
	Formats []string `yaml:"formats"`
	Channel string   `yaml:"channel"`
}

// Deliverer builds a report, writes its files to a directory and posts a
// digest with the files attached.
type Deliverer struct {
	Builder *Builder
	Poster  alerts.ReportPoster // nil: files only
	OutDir  string
	Log     *slog.Logger
}

// Deliver runs s for the period ending at to and returns the files written.
// The files are written before the digest is posted, so a chat outage
// loses no report.
func (d *Deliverer) Deliver(ctx context.Context, s Schedule, to time.Time) ([]string, error) {
	r, err := d.Builder.Build(ctx, Options{Period: s.Period, To: to})
	if err != nil {
		return nil, err
	}
	formats := s.Formats
	if len(formats) == 0 {
		formats = []string{"html", "csv"}
	}
	if err := os.MkdirAll(d.OutDir, 0o750); err != nil {
		return nil, fmt.Errorf("create summary directory: %w", err)
	}
	stamp := r.To.Format("20060102-1504")
	var files []alerts.Attachment
	var paths []string
	for _, f := range formats {
		var buf bytes.Buffer
		if err := Render(&buf, r, f); err != nil {
			return paths, err
		}
		name := fmt.Sprintf("usage-%s-%s.%s", r.Period, stamp, ext(f))
		path := filepath.Join(d.OutDir, name)
		if err := os.WriteFile(path, buf.Bytes(), 0o640); err != nil {
			return paths, fmt.Errorf("write summary: %w", err)
		}
		paths = append(paths, path)
		files = append(files, alerts.Attachment{Name: name, Title: fmt.Sprintf("API key usage review, %s to %s", r.Period, r.To.Format("2006-01-02 15:04 UTC")), Data: buf.Bytes(), Path: path})
	}
	if d.Poster != nil && s.Channel != "" {
		if err := d.Poster.PostReport(ctx, s.Channel, Digest(r, 5), files); err != nil {
			return paths, fmt.Errorf("post summary digest to %s: %w", s.Channel, err)
		}
	}
	if d.Log != nil {
		d.Log.Info("usage summary delivered", "period", r.Period, "keys", r.Totals.Keys, "flagged", r.Totals.FlaggedKeys, "signals", signalTotal(r.Totals.Signals), "files", paths, "channel", s.Channel)
	}
	return paths, nil
}

func ext(format string) string {
	if format == "table" {
		return "txt"
	}
	return format
}
