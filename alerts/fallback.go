package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Fallback outcomes, recorded in alert_deliveries for each finding and
// fallback target (the notifier column names the target).
const (
	OutcomeExpired        = "expired"         // never delivered within the horizon; handed to the fallback
	OutcomeFallback       = "fallback"        // the fallback target took the finding
	OutcomeFallbackRetry  = "fallback_retry"  // the fallback target failed, may succeed later: retried next cycle
	OutcomeFallbackFailed = "fallback_failed" // the fallback target refused it for good
)

// Fallback target names, as recorded in alert_deliveries.notifier.
const (
	FallbackChannel = "fallback-channel"
	FallbackWebhook = "fallback-webhook"
	FallbackFile    = "fallback-file"
)

// FallbackTarget is one route for findings whose delivery failed for good
// (a Slack error no retry fixes) or that were not delivered within the
// horizon. Every target gets every such finding (fan-out); each target's
// outcome is recorded per finding, so a target that fails transiently is
// retried by later cycles without sending again to the targets that took it.
type FallbackTarget struct {
	// Name identifies the target in records, metrics and logs
	// (FallbackChannel, FallbackWebhook, FallbackFile).
	Name string
	// Notifier delivers the fallback message.
	Notifier Notifier
	// Channel, when set, is where the message is posted (a channel target:
	// the primary Slack client, another channel). Empty keeps the channel
	// the finding was routed to (webhooks and files ignore it anyway).
	Channel string
	// Where describes the destination in records (channel, "webhook",
	// file path); no secret.
	Where string
}

// fallbackMessage returns a copy of m fit for target t: posted standalone
// (no thread, no update of a parent that lives in another channel), in t's
// channel when it has one, saying why it is a fallback.
func (t FallbackTarget) message(m *Message, reason string) *Message {
	fm := *m
	fm.ThreadTS, fm.UpdateTS, fm.Broadcast = "", "", false
	if fm.Kind == KindRepeat || fm.Kind == KindEscalation {
		fm.Kind = KindAlert // a reply without its thread reads as a new alert
	}
	if t.Channel != "" {
		fm.Channel = t.Channel
	}
	fm.FallbackReason = reason
	return &fm
}

// FileNotifier appends each message as one JSON line to a file, created
// with mode 0600. The text it writes went through secret.Redact: no full
// API key, Slack token or webhook URL. It is the fallback of last resort:
// nothing outside the machine has to work. The file is opened for each
// message (they are rare), so it can be rotated by moving it away, and
// there is nothing to close.
type FileNotifier struct {
	mu   sync.Mutex
	path string
}

var _ Notifier = (*FileNotifier)(nil)

// NewFileNotifier returns a FileNotifier appending to path, after checking
// that the file can be opened for appending (creating it, mode 0600).
func NewFileNotifier(path string) (*FileNotifier, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open fallback file: %w", err)
	}
	f.Close()
	return &FileNotifier{path: path}, nil
}

// Name returns FallbackFile.
func (n *FileNotifier) Name() string { return FallbackFile }

// Path returns the file's path.
func (n *FileNotifier) Path() string { return n.path }

// FileRecord is one line of a FileNotifier's file.
type FileRecord struct {
	At            time.Time     `json:"at"`
	Kind          string        `json:"kind"`
	Reason        string        `json:"reason,omitempty"` // why it is here (the failure, or expired)
	Channel       string        `json:"channel"`          // where it was meant to go
	RuleID        string        `json:"rule_id"`
	RuleName      string        `json:"rule_name,omitempty"`
	Severity      string        `json:"severity"`
	Env           string        `json:"env,omitempty"`
	Runbook       string        `json:"runbook,omitempty"`
	TotalGroups   int           `json:"total_groups"`
	TotalFindings int           `json:"total_findings,omitempty"`
	Text          string        `json:"text"` // the message as the console renders it
	Findings      []FileFinding `json:"findings"`
}

// FileFinding is a finding in a FileRecord.
type FileFinding struct {
	ID        string    `json:"finding_id"`
	EvalTime  time.Time `json:"eval_time"`
	GroupKey  string    `json:"group_key"`
	KeyID     string    `json:"key_id,omitempty"`
	KeyHint   string    `json:"key_hint,omitempty"`
	ClientIP  string    `json:"client_ip,omitempty"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Summary   string    `json:"summary"`
}

// Notify implements Notifier: it appends m as one JSON line. A write
// failure is retryable (a full disk may be freed).
func (n *FileNotifier) Notify(_ context.Context, m *Message) (Receipt, error) {
	r := FileRecord{At: time.Now().UTC(), Kind: m.Kind, Reason: secret.Redact(m.FallbackReason), Channel: m.Channel, RuleID: m.RuleID,
		RuleName: secret.Redact(m.RuleName), Severity: m.Severity, Env: m.Env, Runbook: m.Runbook, TotalGroups: m.TotalGroups,
		TotalFindings: m.TotalFindings, Text: secret.Redact(RenderText(m, "fallback")), Findings: []FileFinding{}}
	for _, f := range m.Findings {
		r.Findings = append(r.Findings, FileFinding{ID: f.ID, EvalTime: f.EvalTime.UTC(), GroupKey: secret.Redact(f.GroupKey), KeyID: secret.Redact(f.KeyID),
			KeyHint: f.KeyHint, ClientIP: f.ClientIP, Value: f.Value, Threshold: f.Threshold, Summary: secret.Redact(f.Summary)})
	}
	line, err := json.Marshal(r)
	if err != nil {
		return Receipt{}, &DeliveryError{Err: fmt.Errorf("encode fallback record: %w", err), Code: "encode"}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	f, err := os.OpenFile(n.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return Receipt{}, &DeliveryError{Err: fmt.Errorf("open fallback file: %w", err), Retry: true, Code: "write"}
	}
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Receipt{}, &DeliveryError{Err: fmt.Errorf("write fallback file %s: %w", n.path, err), Retry: true, Code: "write"}
	}
	return Receipt{}, nil
}

// fallbackItem is a finding that failed for good or expired, and the
// fallback targets that already dealt with it.
type fallbackItem struct {
	detect.Finding
	Kind    string          // kind of the failed delivery
	Channel string          // channel it was routed to
	Outcome string          // failed or expired
	Code    string          // failure code (or "horizon")
	Done    map[string]bool // targets that took or refused it for good
	Tries   map[string]int  // attempts per target so far
}

// reason says, in one line, why it is a fallback.
func (it *fallbackItem) reason() string {
	if it.Outcome == OutcomeExpired {
		return fmt.Sprintf("Not delivered to %s within the alert horizon; this is the fallback route.", it.Channel)
	}
	return fmt.Sprintf("Delivery to %s failed for good (%s); this is the fallback route.", it.Channel, it.Code)
}

// fallbackStage hands findings that failed for good or expired to the
// fallback targets, recording each target's outcome per finding. The
// findings for one target are grouped into one message per rule, outcome,
// code and intended channel.
func (d *Dispatcher) fallbackStage(ctx context.Context, now time.Time, record func([]Attempt) error, st *Stats) error {
	if len(d.opts.Fallback) == 0 {
		// Nothing takes them: they stay recorded as failed/expired, the
		// metrics and readiness say so (noted when they failed).
		return nil
	}
	names := make([]string, len(d.opts.Fallback))
	for i, t := range d.opts.Fallback {
		names[i] = t.Name
	}
	items, err := d.store.FallbackPending(ctx, now.Add(-d.opts.FallbackLookback), names, 2000)
	if err != nil {
		return err
	}
	for _, t := range d.opts.Fallback {
		type gk struct{ rule, outcome, code, channel string }
		groups := map[gk][]*fallbackItem{}
		var order []gk
		for i := range items {
			it := &items[i]
			if it.Done[t.Name] {
				continue
			}
			k := gk{it.RuleID, it.Outcome, it.Code, it.Channel}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], it)
		}
		for _, k := range order {
			its := groups[k]
			m := t.message(d.fallbackContent(k.channel, its), its[0].reason())
			_, err := d.deliverVia(ctx, t.Notifier, t.Name, m)
			outcome := OutcomeFallback
			switch {
			case err == nil:
				st.Fallback += len(its)
			case isRetryable(err):
				outcome = OutcomeFallbackRetry
				st.FallbackFailed += len(its)
			default:
				outcome = OutcomeFallbackFailed
				st.FallbackFailed += len(its)
			}
			d.metrics.fallback.WithLabelValues(t.Name, outcome).Add(float64(len(its)))
			where := t.Where
			if where == "" {
				where = m.Channel
			}
			as := make([]Attempt, 0, len(its))
			for _, it := range its {
				a := d.attempt(now, &it.Finding, it.Kind, where, it.Tries[t.Name]+1, outcome, err, Receipt{}, "", "")
				a.Notifier = t.Name
				as = append(as, a)
			}
			if err != nil {
				d.health.fallbackFailed(now, t.Name, len(its))
				d.log.Error("fallback delivery failed", "target", t.Name, "rule", k.rule, "findings", len(its), "outcome", outcome, "err", err)
			} else {
				d.log.Warn("findings handed to the fallback", "target", t.Name, "rule", k.rule, "channel", k.channel, "why", k.outcome, "code", k.code, "findings", len(its))
			}
			if err := record(as); err != nil {
				return err
			}
		}
	}
	return nil
}

// fallbackContent builds the message for findings of one rule that go to
// a fallback: an ordinary alert when they share one evaluation, else a
// catch-up message folding them.
func (d *Dispatcher) fallbackContent(channel string, its []*fallbackItem) *Message {
	ps := make([]pending, len(its))
	one := true
	for i, it := range its {
		ps[i] = pending{Finding: it.Finding}
		if !it.EvalTime.Equal(its[0].EvalTime) {
			one = false
		}
	}
	if !one {
		return d.foldMessage(channel, ps)
	}
	sortPending(ps)
	return d.message(msgKey{rule: its[0].RuleID, eval: its[0].EvalTime.Unix(), channel: channel, kind: KindAlert}, ps, nil)
}

// expire records, once, the findings that were never delivered within the
// horizon (outcome expired), so that they do not silently drop out of the
// pending query; the fallback stage then hands them on.
func (d *Dispatcher) expire(ctx context.Context, now time.Time, record func([]Attempt) error, st *Stats) error {
	before := now.Add(-d.opts.Horizon)
	ps, err := d.store.Expired(ctx, before.Add(-d.opts.ExpireLookback), before, 5000)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return nil
	}
	herr := &DeliveryError{Err: fmt.Errorf("not delivered within the horizon (%s)", d.opts.Horizon), Code: "horizon"}
	as := make([]Attempt, 0, len(ps))
	byRule := map[string]int{}
	for _, p := range ps {
		ch, _ := d.opts.Router.Route(&p.Finding)
		as = append(as, d.attempt(now, &p.Finding, KindAlert, ch, p.Attempts+1, OutcomeExpired, herr, Receipt{}, "", ""))
		byRule[p.RuleID]++
	}
	if err := record(as); err != nil {
		return err
	}
	st.Expired += len(ps)
	d.metrics.expired.Add(float64(len(ps)))
	d.health.expired(now, len(ps))
	rs := make([]string, 0, len(byRule))
	for r, n := range byRule {
		rs = append(rs, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(rs)
	d.log.Error("findings not delivered within the horizon; recorded as expired", "findings", len(ps), "horizon", d.opts.Horizon,
		"rules", strings.Join(rs, ","), "fallback_targets", len(d.opts.Fallback))
	return nil
}

// deliveryHealth remembers recent permanent failures, expiries and
// fallback failures, for readiness and the degraded gauge.
type deliveryHealth struct {
	mu          sync.Mutex
	window      time.Duration
	failedAt    time.Time
	failedCode  string
	failedN     int
	expiredAt   time.Time
	expiredN    int
	fbFailedAt  time.Time
	fbTarget    string
	hasFallback bool
}

// configure sets the window and whether a fallback exists.
func (h *deliveryHealth) configure(window time.Duration, hasFallback bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.window, h.hasFallback = window, hasFallback
}

func (h *deliveryHealth) failed(now time.Time, code string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.failedAt) > h.window {
		h.failedN = 0
	}
	h.failedAt, h.failedCode = now, code
	h.failedN += n
}

func (h *deliveryHealth) expired(now time.Time, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.expiredAt) > h.window {
		h.expiredN = 0
	}
	h.expiredAt = now
	h.expiredN += n
}

func (h *deliveryHealth) fallbackFailed(now time.Time, target string, _ int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fbFailedAt, h.fbTarget = now, target
}

// err returns why delivery is degraded at now, or nil.
func (h *deliveryHealth) err(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	recent := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) <= h.window }
	fb := "handed to the fallback"
	if !h.hasFallback {
		fb = "no fallback configured (alerts.fallback)"
	}
	if recent(h.failedAt) {
		errs = append(errs, fmt.Errorf("alert delivery degraded: %d findings failed for good in the last %s (last code %s, at %s); %s",
			h.failedN, h.window, h.failedCode, h.failedAt.UTC().Format(time.RFC3339), fb))
	}
	if recent(h.expiredAt) {
		errs = append(errs, fmt.Errorf("alert delivery degraded: %d findings expired undelivered in the last %s; %s", h.expiredN, h.window, fb))
	}
	if recent(h.fbFailedAt) {
		errs = append(errs, fmt.Errorf("alert fallback %s failing (last at %s)", h.fbTarget, h.fbFailedAt.UTC().Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// DeliveryHealthy returns nil while alert delivery works, else an error
// saying why it is degraded: findings failed for good (a Slack error no
// retry fixes) or expired undelivered within Options.DegradedFor, or a
// fallback target failing. For /readyz of detect. A nil Dispatcher (alerts
// disabled) is healthy. Safe for concurrent use.
func (d *Dispatcher) DeliveryHealthy() error {
	if d == nil {
		return nil
	}
	return d.health.err(d.now())
}
