package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Store keeps findings and rule runs in ClickHouse. Cooldown state is read
// back from the findings table, so it survives restarts.
type Store struct {
	conn driver.Conn
	db   string
}

// NewStore returns a Store for database db.
func NewStore(conn driver.Conn, db string) *Store { return &Store{conn: conn, db: db} }

// Reported returns, per group key, what rule reported (findings with
// status new or signal) with eval_time in [from, to]: the latest time and the
// highest severity. Findings with an id in exclude are ignored, so running
// an evaluation again (a catch-up over a range already seen) does not see
// itself. The range may extend past the evaluation time: a window evaluated
// again for late data must see alerts sent after it.
func (s *Store) Reported(ctx context.Context, ruleID string, from, to time.Time, exclude []string) (map[string]Prior, error) {
	q := "SELECT group_key, severity, max(eval_time) FROM " + s.db + ".findings FINAL WHERE rule_id = ? AND status IN ('new', 'signal') AND eval_time >= toDateTime(?) AND eval_time <= toDateTime(?)"
	args := []any{ruleID, uint32(from.Unix()), uint32(to.Unix())}
	if len(exclude) > 0 {
		q += " AND finding_id NOT IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(exclude)), ", ") + ")"
		for _, id := range exclude {
			args = append(args, id)
		}
	}
	rows, err := s.conn.Query(ctx, q+" GROUP BY group_key, severity", args...)
	if err != nil {
		return nil, fmt.Errorf("read cooldown state of %s: %w", ruleID, err)
	}
	defer rows.Close()
	out := map[string]Prior{}
	for rows.Next() {
		var g, sev string
		var t time.Time
		if err := rows.Scan(&g, &sev, &t); err != nil {
			return nil, fmt.Errorf("read cooldown state of %s: %w", ruleID, err)
		}
		p := out[g]
		if t.After(p.At) {
			p.At = t
		}
		if SeverityRank(sev) > SeverityRank(p.Severity) {
			p.Severity = sev
		}
		out[g] = p
	}
	return out, rows.Err()
}

// SaveFindings stores findings in one insert.
func (s *Store) SaveFindings(ctx context.Context, fs []Finding) error {
	if len(fs) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db+".findings (finding_id, rule_id, rule_name, rule_type, severity, status, group_key, key_id, key_hint, key_fingerprint, account_id, client_ip, eval_time, window_start, window_end, value, threshold, summary, evidence, labels, runbook, trigger, escalated_from, created_at)")
	if err != nil {
		return fmt.Errorf("save findings: %w", err)
	}
	defer b.Abort() //nolint:errcheck // no-op after Send
	now := time.Now().UTC()
	for _, f := range fs {
		ev, _ := json.Marshal(f.Evidence)
		labels, _ := json.Marshal(f.Labels)
		if err := b.Append(f.ID, f.RuleID, f.RuleName, f.RuleType, f.Severity, f.Status, f.GroupKey, f.KeyID, f.KeyHint, f.KeyFingerprint, f.AccountID, f.ClientIP,
			f.EvalTime, f.WindowStart, f.WindowEnd, f.Value, f.Threshold, f.Summary, string(ev), string(labels), f.Runbook, f.Trigger, f.EscalatedFrom, now); err != nil {
			return fmt.Errorf("save findings: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("save findings: %w", err)
	}
	return nil
}

// RunRecord is one row of rule_runs.
type RunRecord struct {
	RuleID     string
	RuleHash   string // SHA-256 of the rule file run (rules.Rule.Hash)
	EvalTime   time.Time
	Window     Window    // the event window read
	Watermark  time.Time // ingest watermark when the run started (zero: unknown)
	Complete   bool      // the watermark had passed the window's end
	Signals    int
	StartedAt  time.Time
	Duration   time.Duration
	Rows       int
	Findings   int
	Suppressed int
	Dropped    int // findings over the per-run cap, not stored
	Err        error
	Trigger    string
}

// SaveRun stores one run record.
func (s *Store) SaveRun(ctx context.Context, r RunRecord) error {
	msg := ""
	if r.Err != nil {
		msg = r.Err.Error()
	}
	complete := uint8(0)
	if r.Complete {
		complete = 1
	}
	err := s.conn.Exec(ctx, "INSERT INTO "+s.db+".rule_runs (rule_id, rule_hash, eval_time, window_start, window_end, watermark, complete, started_at, duration_ms, rows, findings, signals, suppressed, findings_dropped, error, trigger) SELECT ?, ?, toDateTime(?), toDateTime(?), toDateTime(?), toDateTime(?), toUInt8(?), toDateTime(?), toUInt32(?), toUInt32(?), toUInt32(?), toUInt32(?), toUInt32(?), toUInt32(?), ?, ?",
		r.RuleID, r.RuleHash, uint32(r.EvalTime.Unix()), uint32(max(r.Window.From.Unix(), 0)), uint32(max(r.Window.To.Unix(), 0)), uint32(max(r.Watermark.Unix(), 0)), complete,
		uint32(r.StartedAt.Unix()), uint32(r.Duration.Milliseconds()), uint32(r.Rows), uint32(r.Findings), uint32(r.Signals), uint32(r.Suppressed), uint32(r.Dropped), msg, r.Trigger)
	if err != nil {
		return fmt.Errorf("save run of %s: %w", r.RuleID, err)
	}
	return nil
}

// FindingColumns is the select list ScanFinding reads, in order: every
// reader of the findings table selects it, so there is one way to read a
// finding back.
const FindingColumns = "finding_id, rule_id, rule_name, rule_type, severity, status, group_key, key_id, key_hint, key_fingerprint, account_id, client_ip, eval_time, window_start, window_end, value, threshold, summary, evidence, labels, runbook, trigger, escalated_from"

// Scanner is a row of a query result (driver.Rows satisfies it).
type Scanner interface {
	Scan(dest ...any) error
}

// ScanFinding reads one row selected with FindingColumns.
func ScanFinding(sc Scanner) (Finding, error) {
	var f Finding
	var ev, labels string
	if err := sc.Scan(&f.ID, &f.RuleID, &f.RuleName, &f.RuleType, &f.Severity, &f.Status, &f.GroupKey, &f.KeyID, &f.KeyHint, &f.KeyFingerprint, &f.AccountID, &f.ClientIP,
		&f.EvalTime, &f.WindowStart, &f.WindowEnd, &f.Value, &f.Threshold, &f.Summary, &ev, &labels, &f.Runbook, &f.Trigger, &f.EscalatedFrom); err != nil {
		return f, fmt.Errorf("scan finding: %w", err)
	}
	_ = json.Unmarshal([]byte(ev), &f.Evidence)
	_ = json.Unmarshal([]byte(labels), &f.Labels)
	f.Group = ParseGroupKey(f.GroupKey)
	return f, nil
}

// Findings returns stored findings of rule (all rules if empty) with
// eval_time in [from, to), newest first.
func (s *Store) Findings(ctx context.Context, ruleID string, from, to time.Time) ([]Finding, error) {
	q := "SELECT " + FindingColumns + " FROM " + s.db + ".findings FINAL WHERE eval_time >= toDateTime(?) AND eval_time < toDateTime(?)"
	args := []any{uint32(from.Unix()), uint32(to.Unix())}
	if ruleID != "" {
		q += " AND rule_id = ?"
		args = append(args, ruleID)
	}
	rows, err := s.conn.Query(ctx, q+" ORDER BY eval_time DESC, rule_id, group_key", args...)
	if err != nil {
		return nil, fmt.Errorf("read findings: %w", err)
	}
	defer rows.Close()
	var out []Finding
	for rows.Next() {
		f, err := ScanFinding(rows)
		if err != nil {
			return nil, fmt.Errorf("read findings: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// ParseGroupKey turns a finding's group key ("key_id=k1,client_ip=…") back
// into its field values.
func ParseGroupKey(k string) map[string]string {
	out := map[string]string{}
	for _, p := range strings.Split(k, ",") {
		if a, b, ok := strings.Cut(p, "="); ok {
			out[a] = b
		}
	}
	return out
}
