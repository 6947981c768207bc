package alerts

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/detect"
)

// Delivery outcomes.
const (
	OutcomeSent     = "sent"
	OutcomeRetry    = "retry"
	OutcomeFailed   = "failed"
	OutcomeSilenced = "silenced"
)

// Store keeps delivery records and silences in ClickHouse and reads the
// findings waiting to be delivered.
type Store struct {
	conn driver.Conn
	db   string
}

// NewStore returns a Store for database db.
func NewStore(conn driver.Conn, db string) *Store { return &Store{conn: conn, db: db} }

// Attempt is one row of alert_deliveries.
type Attempt struct {
	At           time.Time
	FindingID    string
	RuleID       string
	GroupKey     string
	EvalTime     time.Time
	Kind         string
	Notifier     string
	Channel      string
	Attempt      int
	Outcome      string
	Code         string
	Error        string
	SlackChannel string
	SlackTS      string
	ThreadTS     string
	SilenceID    string
}

// Record stores attempts in one insert.
func (s *Store) Record(ctx context.Context, as []Attempt) error {
	if len(as) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db+".alert_deliveries (attempted_at, seq, finding_id, rule_id, group_key, eval_time, kind, notifier, channel, attempt, outcome, code, error, slack_channel, slack_ts, thread_ts, silence_id)")
	if err != nil {
		return fmt.Errorf("record deliveries: %w", err)
	}
	defer b.Abort() //nolint:errcheck // no-op after Send
	seq := uint64(time.Now().UnixNano())
	for i, a := range as {
		if err := b.Append(a.At.UTC(), seq+uint64(i), a.FindingID, a.RuleID, a.GroupKey, a.EvalTime.UTC(), a.Kind, a.Notifier, a.Channel, uint16(a.Attempt),
			a.Outcome, a.Code, a.Error, a.SlackChannel, a.SlackTS, a.ThreadTS, a.SilenceID); err != nil {
			return fmt.Errorf("record deliveries: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record deliveries: %w", err)
	}
	return nil
}

// pending is a finding waiting for delivery and its previous attempts.
type pending struct {
	detect.Finding
	Attempts int
}

// finalOutcomes are the outcomes after which a finding is not pending any
// more.
const finalOutcomes = "'sent', 'failed', 'silenced', 'expired'"

// Pending returns findings with status new, evaluated at or after since,
// that have no final delivery outcome (sent, failed, silenced or expired),
// oldest first, with how many attempts were made so far.
func (s *Store) Pending(ctx context.Context, since time.Time, limit int) ([]pending, error) {
	return s.pendingBetween(ctx, since, time.Time{}, limit)
}

// Expired returns the findings Pending would return that were evaluated in
// [since, before): those the horizon ends without a delivery.
func (s *Store) Expired(ctx context.Context, since, before time.Time, limit int) ([]pending, error) {
	return s.pendingBetween(ctx, since, before, limit)
}

// pendingBetween reads findings with status new evaluated at or after
// since (and before before, unless zero) without a final outcome.
func (s *Store) pendingBetween(ctx context.Context, since, before time.Time, limit int) ([]pending, error) {
	upper := uint32(1<<32 - 1)
	if !before.IsZero() {
		upper = uint32(before.Unix())
	}
	q := "SELECT " + detect.FindingColumns + " FROM " +
		s.db + ".findings FINAL WHERE status = 'new' AND eval_time >= toDateTime(?) AND eval_time < toDateTime(?) AND finding_id NOT IN (SELECT finding_id FROM " + s.db +
		".alert_deliveries WHERE outcome IN (" + finalOutcomes + ") AND eval_time >= toDateTime(?)) ORDER BY eval_time, rule_id, value DESC LIMIT ?"
	rows, err := s.conn.Query(ctx, q, uint32(since.Unix()), upper, uint32(since.Unix()), uint64(limit))
	if err != nil {
		return nil, fmt.Errorf("read pending findings: %w", err)
	}
	defer rows.Close()
	var out []pending
	for rows.Next() {
		f, err := detect.ScanFinding(rows)
		if err != nil {
			return nil, fmt.Errorf("read pending findings: %w", err)
		}
		out = append(out, pending{Finding: f})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	ids := make([]string, len(out))
	for i, p := range out {
		ids[i] = p.ID
	}
	counts, err := s.attemptCounts(ctx, ids, since)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Attempts = counts[out[i].ID]
	}
	return out, nil
}

func (s *Store) attemptCounts(ctx context.Context, ids []string, since time.Time) (map[string]int, error) {
	args := []any{uint32(since.Unix())}
	marks := make([]string, len(ids))
	for i, id := range ids {
		marks[i] = "?"
		args = append(args, id)
	}
	rows, err := s.conn.Query(ctx, "SELECT finding_id, count() FROM "+s.db+".alert_deliveries WHERE eval_time >= toDateTime(?) AND finding_id IN ("+strings.Join(marks, ", ")+") GROUP BY finding_id", args...)
	if err != nil {
		return nil, fmt.Errorf("count attempts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = int(n)
	}
	return out, rows.Err()
}

// Incident is an open incident: a rule and group whose first alert was sent
// and that has not been resolved.
type Incident struct {
	RuleID       string
	GroupKey     string
	Channel      string // channel routed to
	SlackChannel string // channel id of the parent message
	ParentTS     string // parent message ts (thread)
	OpenedAt     time.Time
	LastEval     time.Time // eval time of the latest finding delivered
	Repeats      int
}

// OpenIncidents returns incidents whose last sent delivery (since since) is
// not a resolution. An incident is opened by an alert, or by a catch-up
// message for a group that had no open incident (recorded without
// thread_ts); repeats, escalations and catch-ups of a group with an open
// incident (recorded with its thread_ts) count as repeats.
func (s *Store) OpenIncidents(ctx context.Context, since time.Time) (map[string]*Incident, error) {
	rows, err := s.conn.Query(ctx, `SELECT rule_id, group_key,
			argMax(kind, seq) AS last_kind,
			argMaxIf(channel, seq, `+opensIncident+`) AS ch,
			argMaxIf(slack_channel, seq, `+opensIncident+`) AS sch,
			argMaxIf(slack_ts, seq, `+opensIncident+`) AS parent,
			maxIf(attempted_at, `+opensIncident+`) AS opened,
			max(eval_time) AS last_eval,
			countIf(kind IN ('repeat', 'escalation') OR (kind = 'catchup' AND thread_ts != '')) AS repeats
		FROM `+s.db+`.alert_deliveries
		WHERE outcome = 'sent' AND attempted_at >= toDateTime(?)
		GROUP BY rule_id, group_key
		HAVING last_kind != 'resolved' AND opened > toDateTime(0)`, uint32(since.Unix()))
	if err != nil {
		return nil, fmt.Errorf("read open incidents: %w", err)
	}
	defer rows.Close()
	out := map[string]*Incident{}
	for rows.Next() {
		var in Incident
		var lastKind string
		var repeats uint64
		if err := rows.Scan(&in.RuleID, &in.GroupKey, &lastKind, &in.Channel, &in.SlackChannel, &in.ParentTS, &in.OpenedAt, &in.LastEval, &repeats); err != nil {
			return nil, fmt.Errorf("read open incidents: %w", err)
		}
		in.Repeats = int(repeats)
		out[incidentKey(in.RuleID, in.GroupKey)] = &in
	}
	return out, rows.Err()
}

// opensIncident is the condition on alert_deliveries rows (sent) that open
// an incident.
const opensIncident = "(kind = 'alert' OR (kind = 'catchup' AND thread_ts = ''))"

func incidentKey(rule, group string) string { return rule + "\x00" + group }

// LastMatches returns, for rule and groups, the latest evaluation time with
// any finding (new or suppressed), and the latest successful run of the rule.
func (s *Store) LastMatches(ctx context.Context, ruleID string, since time.Time) (map[string]time.Time, time.Time, error) {
	out := map[string]time.Time{}
	rows, err := s.conn.Query(ctx, "SELECT group_key, max(eval_time) FROM "+s.db+".findings WHERE rule_id = ? AND eval_time >= toDateTime(?) GROUP BY group_key", ruleID, uint32(since.Unix()))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read last matches: %w", err)
	}
	for rows.Next() {
		var g string
		var t time.Time
		if err := rows.Scan(&g, &t); err != nil {
			rows.Close()
			return nil, time.Time{}, err
		}
		out[g] = t
	}
	rows.Close()
	var lastRun time.Time
	if err := s.conn.QueryRow(ctx, "SELECT max(eval_time) FROM "+s.db+".rule_runs WHERE rule_id = ? AND error = '' AND eval_time >= toDateTime(?)", ruleID, uint32(since.Unix())).Scan(&lastRun); err != nil {
		return nil, time.Time{}, fmt.Errorf("read last run: %w", err)
	}
	return out, lastRun, nil
}

// AddSilence stores s.
func (s *Store) AddSilence(ctx context.Context, sl Silence) error {
	if err := sl.Validate(); err != nil {
		return err
	}
	return s.writeSilence(ctx, sl, 0)
}

// writeSilence stores a version of sl; bump moves its version past one
// written in the same second.
func (s *Store) writeSilence(ctx context.Context, sl Silence, bump int) error {
	exp := uint8(0)
	if sl.Expired {
		exp = 1
	}
	err := s.conn.Exec(ctx, "INSERT INTO "+s.db+".silences (silence_id, rule_id, key_id, client_ip, reason, created_by, created_at, starts_at, ends_at, expired, updated_at) SELECT ?, ?, ?, ?, ?, ?, toDateTime(?), toDateTime(?), toDateTime(?), toUInt8(?), now() + ?",
		sl.ID, sl.RuleID, sl.KeyID, sl.ClientIP, sl.Reason, sl.CreatedBy, uint32(sl.CreatedAt.Unix()), uint32(sl.StartsAt.Unix()), uint32(sl.EndsAt.Unix()), exp, bump)
	if err != nil {
		return fmt.Errorf("store silence: %w", err)
	}
	return nil
}

// Silences returns silences ending after since (all if since is zero).
func (s *Store) Silences(ctx context.Context, since time.Time) ([]Silence, error) {
	rows, err := s.conn.Query(ctx, "SELECT silence_id, rule_id, key_id, client_ip, reason, created_by, created_at, starts_at, ends_at, expired FROM "+s.db+
		".silences FINAL WHERE ends_at >= toDateTime(?) ORDER BY created_at", uint32(max(since.Unix(), 0)))
	if err != nil {
		return nil, fmt.Errorf("read silences: %w", err)
	}
	defer rows.Close()
	var out []Silence
	for rows.Next() {
		var sl Silence
		var exp uint8
		if err := rows.Scan(&sl.ID, &sl.RuleID, &sl.KeyID, &sl.ClientIP, &sl.Reason, &sl.CreatedBy, &sl.CreatedAt, &sl.StartsAt, &sl.EndsAt, &exp); err != nil {
			return nil, fmt.Errorf("read silences: %w", err)
		}
		sl.Expired = exp == 1
		out = append(out, sl)
	}
	return out, rows.Err()
}

// ExpireSilence ends silence id now.
func (s *Store) ExpireSilence(ctx context.Context, id string) error {
	all, err := s.Silences(ctx, time.Time{})
	if err != nil {
		return err
	}
	for _, sl := range all {
		if sl.ID == id {
			sl.Expired = true
			return s.writeSilence(ctx, sl, 1)
		}
	}
	return fmt.Errorf("no silence %q", id)
}

// FallbackPending returns the findings recorded since since as failed for
// good or expired that some of targets (fallback target names) have not
// dealt with yet, each with the targets that already took it or refused it
// for good (Done) and the attempts of each target so far. Resolution notes
// (no finding) are not included.
func (s *Store) FallbackPending(ctx context.Context, since time.Time, targets []string, limit int) ([]fallbackItem, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	marks := make([]string, len(targets))
	args := []any{uint32(since.Unix())}
	for i, t := range targets {
		marks[i] = "?"
		args = append(args, t)
	}
	args = append(args, uint64(limit))
	rows, err := s.conn.Query(ctx, `SELECT finding_id,
			argMaxIf(kind, seq, outcome IN ('failed', 'expired')) AS k,
			argMaxIf(channel, seq, outcome IN ('failed', 'expired')) AS ch,
			argMaxIf(outcome, seq, outcome IN ('failed', 'expired')) AS o,
			argMaxIf(code, seq, outcome IN ('failed', 'expired')) AS c,
			groupUniqArrayIf(notifier, outcome IN ('fallback', 'fallback_failed')) AS done,
			groupArrayIf(notifier, outcome IN ('fallback', 'fallback_retry', 'fallback_failed')) AS tries
		FROM `+s.db+`.alert_deliveries
		WHERE attempted_at >= toDateTime(?) AND finding_id != ''
		GROUP BY finding_id
		HAVING countIf(outcome IN ('failed', 'expired')) > 0 AND NOT hasAll(done, [`+strings.Join(marks, ", ")+`])
		ORDER BY min(attempted_at), finding_id
		LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("read findings for the fallback: %w", err)
	}
	byID := map[string]*fallbackItem{}
	var ids []string
	for rows.Next() {
		it := &fallbackItem{Done: map[string]bool{}, Tries: map[string]int{}}
		var id string
		var done, tries []string
		if err := rows.Scan(&id, &it.Kind, &it.Channel, &it.Outcome, &it.Code, &done, &tries); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read findings for the fallback: %w", err)
		}
		for _, t := range done {
			it.Done[t] = true
		}
		for _, t := range tries {
			it.Tries[t]++
		}
		byID[id] = it
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read findings for the fallback: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	args = make([]any, 0, len(ids))
	marks = make([]string, len(ids))
	for i, id := range ids {
		marks[i] = "?"
		args = append(args, id)
	}
	frows, err := s.conn.Query(ctx, "SELECT "+detect.FindingColumns+" FROM "+s.db+".findings FINAL WHERE finding_id IN ("+strings.Join(marks, ", ")+
		") ORDER BY eval_time, rule_id, value DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("read findings for the fallback: %w", err)
	}
	defer frows.Close()
	var out []fallbackItem
	for frows.Next() {
		f, err := detect.ScanFinding(frows)
		if err != nil {
			return nil, fmt.Errorf("read findings for the fallback: %w", err)
		}
		it := byID[f.ID]
		if it == nil {
			continue
		}
		it.Finding = f
		out = append(out, *it)
		delete(byID, f.ID) // FINAL: one row each, but be safe
	}
	return out, frows.Err()
}
