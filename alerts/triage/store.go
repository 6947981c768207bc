package triage

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/detect"
)

// Store keeps triage actions in ClickHouse (alert_actions) and reads and
// closes findings. It implements ActionStore and FindingStore.
type Store struct {
	conn     driver.Conn
	db       string
	findings *detect.Store
}

var (
	_ ActionStore  = (*Store)(nil)
	_ FindingStore = (*Store)(nil)
)

// NewStore returns a Store for database db.
func NewStore(conn driver.Conn, db string) *Store {
	return &Store{conn: conn, db: db, findings: detect.NewStore(conn, db)}
}

// RecordAction stores a.
func (s *Store) RecordAction(ctx context.Context, a Action) error {
	var ends uint32
	if !a.EndsAt.IsZero() {
		ends = uint32(a.EndsAt.Unix())
	}
	err := s.conn.Exec(ctx, "INSERT INTO "+s.db+".alert_actions (action_id, acted_at, finding_id, rule_id, group_key, action, slack_user_id, slack_channel, slack_ts, reason, silence_id, ends_at, finding_status) "+
		"SELECT ?, toDateTime(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, toDateTime(?), ?",
		a.ID, uint32(a.At.Unix()), a.FindingID, a.RuleID, a.GroupKey, a.Kind, a.SlackUser, a.SlackChannel, a.SlackTS, a.Reason, a.SilenceID, ends, a.FindingStatus)
	if err != nil {
		return fmt.Errorf("record action %s: %w", a.Kind, err)
	}
	return nil
}

// ActionRecorded reports whether an action with id is stored.
func (s *Store) ActionRecorded(ctx context.Context, id string) (bool, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.db+".alert_actions WHERE action_id = ?", id).Scan(&n); err != nil {
		return false, fmt.Errorf("read action %s: %w", id, err)
	}
	return n > 0, nil
}

// Actions returns the actions on finding id, oldest first.
func (s *Store) Actions(ctx context.Context, findingID string) ([]Action, error) {
	rows, err := s.conn.Query(ctx, "SELECT action_id, acted_at, finding_id, rule_id, group_key, action, slack_user_id, slack_channel, slack_ts, reason, silence_id, ends_at, finding_status FROM "+
		s.db+".alert_actions FINAL WHERE finding_id = ? ORDER BY acted_at, action_id", findingID)
	if err != nil {
		return nil, fmt.Errorf("read actions: %w", err)
	}
	defer rows.Close()
	var out []Action
	for rows.Next() {
		var a Action
		if err := rows.Scan(&a.ID, &a.At, &a.FindingID, &a.RuleID, &a.GroupKey, &a.Kind, &a.SlackUser, &a.SlackChannel, &a.SlackTS, &a.Reason, &a.SilenceID, &a.EndsAt, &a.FindingStatus); err != nil {
			return nil, fmt.Errorf("read actions: %w", err)
		}
		if a.EndsAt.Unix() == 0 {
			a.EndsAt = time.Time{}
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Finding returns the finding with id, or nil when none is stored.
func (s *Store) Finding(ctx context.Context, id string) (*detect.Finding, error) {
	rows, err := s.conn.Query(ctx, "SELECT "+detect.FindingColumns+" FROM "+s.db+".findings FINAL WHERE finding_id = ? LIMIT 1", id)
	if err != nil {
		return nil, fmt.Errorf("read finding: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	f, err := detect.ScanFinding(rows)
	if err != nil {
		return nil, fmt.Errorf("read finding: %w", err)
	}
	return &f, nil
}

// SetFindingStatus stores f again with status: findings is a
// ReplacingMergeTree on (rule_id, eval_time, group_key), so the new row
// replaces the old one (read with FINAL).
func (s *Store) SetFindingStatus(ctx context.Context, f detect.Finding, status string) error {
	f.Status = status
	if err := s.findings.SaveFindings(ctx, []detect.Finding{f}); err != nil {
		return fmt.Errorf("set finding status %s: %w", status, err)
	}
	return nil
}
