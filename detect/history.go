package detect

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// Evaluation is one past evaluation of a rule: its tick, when it started and
// how it was triggered.
type Evaluation struct {
	T         time.Time
	StartedAt time.Time
	Trigger   string
}

// RunHistory is the persisted record of evaluations (Store satisfies it).
type RunHistory interface {
	// Evaluated returns, per rule, the successful evaluations of ticks at
	// or after since that were scheduled, replayed or late.
	Evaluated(ctx context.Context, since time.Time) (map[string][]Evaluation, error)
}

var _ RunHistory = (*Store)(nil)

// Evaluated implements RunHistory from rule_runs.
func (s *Store) Evaluated(ctx context.Context, since time.Time) (map[string][]Evaluation, error) {
	rows, err := s.conn.Query(ctx, "SELECT rule_id, eval_time, max(started_at), anyLast(trigger) FROM "+s.db+
		".rule_runs WHERE eval_time >= toDateTime(?) AND error = '' AND trigger IN ('schedule', 'replay', 'late') GROUP BY rule_id, eval_time ORDER BY rule_id, eval_time",
		uint32(since.Unix()))
	if err != nil {
		return nil, fmt.Errorf("read rule runs: %w", err)
	}
	defer rows.Close()
	out := map[string][]Evaluation{}
	for rows.Next() {
		var id string
		var e Evaluation
		if err := rows.Scan(&id, &e.T, &e.StartedAt, &e.Trigger); err != nil {
			return nil, fmt.Errorf("read rule runs: %w", err)
		}
		out[id] = append(out[id], e)
	}
	return out, rows.Err()
}

// evalLog is when each recent tick of a rule was (last) evaluated, sorted
// by tick.
type evalLog struct {
	ticks   []time.Time
	started []time.Time
}

// historyOf returns the log of rule id; s.mu must be held.
func (s *Scheduler) historyOf(id string) *evalLog {
	h := s.history[id]
	if h == nil {
		h = &evalLog{}
		s.history[id] = h
	}
	return h
}

// add records that tick t was evaluated starting at started.
func (h *evalLog) add(t, started time.Time) {
	i := sort.Search(len(h.ticks), func(i int) bool { return !h.ticks[i].Before(t) })
	if i < len(h.ticks) && h.ticks[i].Equal(t) {
		h.started[i] = started
		return
	}
	h.ticks = append(h.ticks, time.Time{})
	h.started = append(h.started, time.Time{})
	copy(h.ticks[i+1:], h.ticks[i:])
	copy(h.started[i+1:], h.started[i:])
	h.ticks[i], h.started[i] = t, started
}

// prune forgets ticks before t.
func (h *evalLog) prune(t time.Time) {
	i := sort.Search(len(h.ticks), func(i int) bool { return !h.ticks[i].Before(t) })
	h.ticks, h.started = h.ticks[i:], h.started[i:]
}

// affected returns the ticks of r whose window contains second sec and
// that were evaluated before writtenAt.
func (h *evalLog) affected(r *rules.Rule, sec, writtenAt time.Time, into map[time.Time]bool) {
	// Windows are [t − delay − window, t − delay): t in (sec + delay, sec + delay + window].
	lo, hi := sec.Add(r.Delay().D()), sec.Add(r.Delay().D()+r.Window.D())
	i := sort.Search(len(h.ticks), func(i int) bool { return h.ticks[i].After(lo) })
	for ; i < len(h.ticks) && !h.ticks[i].After(hi); i++ {
		if h.started[i].Before(writtenAt) {
			into[h.ticks[i]] = true
		}
	}
}
