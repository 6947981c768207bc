package detect

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Arrival is a second of event time that received rows in one written
// batch, and when that batch was durably written.
type Arrival struct {
	Second    time.Time
	WrittenAt time.Time
}

// LateSource finds the rows stored since a point in the ingest progress log.
type LateSource interface {
	// Head returns the position of the newest progress row.
	Head(ctx context.Context) (uint64, error)
	// Arrivals returns the event-time seconds in [from, to) of the rows of
	// batches written after position after, each with the time its batch
	// was written, and the position of the newest progress row read.
	// Batches whose events all lie outside [from, to) are not read.
	Arrivals(ctx context.Context, after uint64, from, to time.Time) ([]Arrival, uint64, error)
}

// ProgressLog reads late arrivals from ingest_progress and access_log: each
// progress row names a batch (partition and offsets) and when it was
// written, so the rows of a batch written after an evaluation started are
// exactly the rows that evaluation could not see.
type ProgressLog struct {
	conn driver.Conn
	db   string
}

// NewProgressLog returns a ProgressLog for database db.
func NewProgressLog(conn driver.Conn, db string) *ProgressLog {
	return &ProgressLog{conn: conn, db: db}
}

var _ LateSource = (*ProgressLog)(nil)

// Head implements LateSource.
func (p *ProgressLog) Head(ctx context.Context) (uint64, error) {
	var seq uint64
	if err := p.conn.QueryRow(ctx, "SELECT max(seq) FROM "+p.db+".ingest_progress").Scan(&seq); err != nil {
		return 0, fmt.Errorf("read ingest progress: %w", err)
	}
	return seq, nil
}

type writtenBatch struct {
	partition    int32
	first, last  int64
	minTS, maxTS time.Time
	seq          uint64
}

// Arrivals implements LateSource.
func (p *ProgressLog) Arrivals(ctx context.Context, after uint64, from, to time.Time) ([]Arrival, uint64, error) {
	rows, err := p.conn.Query(ctx, "SELECT partition, last_offset, rows, min_event_ts, max_event_ts, seq FROM "+p.db+
		".ingest_progress WHERE seq > ? ORDER BY seq", after)
	if err != nil {
		return nil, after, fmt.Errorf("read ingest progress: %w", err)
	}
	var batches []writtenBatch
	head := after
	for rows.Next() {
		var b writtenBatch
		var n uint32
		if err := rows.Scan(&b.partition, &b.last, &n, &b.minTS, &b.maxTS, &b.seq); err != nil {
			rows.Close()
			return nil, after, fmt.Errorf("read ingest progress: %w", err)
		}
		head = max(head, b.seq)
		if n == 0 || b.partition < 0 || !b.minTS.Before(to) || b.maxTS.Before(from) {
			continue // a heartbeat, or nothing in the range
		}
		b.first = b.last - int64(n) + 1
		batches = append(batches, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("read ingest progress: %w", err)
	}
	if len(batches) == 0 {
		return nil, head, nil
	}
	// One query for all batches: which batch each row came from, by
	// partition and offset range.
	var sb strings.Builder
	args := []any{}
	lo, hi := to, from
	sb.WriteString("SELECT toInt64(multiIf(")
	for i, b := range batches {
		fmt.Fprintf(&sb, "kafka_partition = ? AND kafka_offset BETWEEN ? AND ?, %d, ", i)
		args = append(args, b.partition, b.first, b.last)
		lo, hi = minTime(lo, b.minTS), maxTime(hi, b.maxTS)
	}
	lo, hi = maxTime(lo, from), minTime(hi.Add(time.Second), to)
	sb.WriteString("-1)) AS b, toUInt32(ts) AS s FROM " + p.db + ".access_log WHERE ts >= toDateTime(?) AND ts < toDateTime(?) GROUP BY b, s HAVING b >= 0")
	args = append(args, uint32(lo.Unix()), uint32(hi.Unix()))
	q, err := p.conn.Query(ctx, sb.String(), args...)
	if err != nil {
		return nil, after, fmt.Errorf("read late rows: %w", err)
	}
	defer q.Close()
	var out []Arrival
	for q.Next() {
		var b int64
		var sec uint32
		if err := q.Scan(&b, &sec); err != nil {
			return nil, after, fmt.Errorf("read late rows: %w", err)
		}
		out = append(out, Arrival{Second: time.Unix(int64(sec), 0).UTC(), WrittenAt: time.Unix(0, int64(batches[b].seq)).UTC()})
	}
	if err := q.Err(); err != nil {
		return nil, after, fmt.Errorf("read late rows: %w", err)
	}
	return out, head, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// lateStart returns where the search for late rows starts: the newest
// progress row now (what was written before is seen by the replay).
func (s *Scheduler) lateStart(ctx context.Context) (uint64, error) {
	if s.Late == nil {
		return 0, nil
	}
	seq, err := s.Late.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("start looking for late data: %w", err)
	}
	return seq, nil
}

// maxLateTicks bounds the re-evaluations of one rule for one run of late
// rows; beyond it the affected ticks are sampled evenly (the first and last
// always included).
const maxLateTicks = 12

// checkLate finds rows written since the last check whose event time falls
// in windows evaluated before they were written, and hands those ticks to
// their rules' loops.
func (s *Scheduler) checkLate(ctx context.Context) error {
	now := s.now().UTC()
	from := now.Add(-s.ReplayLookback)
	s.mu.Lock()
	after := s.lateSeq
	var to time.Time
	for id, l := range s.loops {
		if IsPosture(l.rule) {
			continue
		}
		if c := s.cursors[id]; !c.IsZero() {
			to = maxTime(to, WindowFor(l.rule, c).To)
		}
		if h := s.history[id]; h != nil {
			h.prune(from)
		}
	}
	s.mu.Unlock()
	if to.IsZero() {
		return nil
	}
	arrivals, head, err := s.Late.Arrivals(ctx, after, from, to)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lateSeq = head
	work := map[*ruleLoop][]time.Time{}
	for _, l := range s.loops {
		if IsPosture(l.rule) {
			continue
		}
		h := s.history[l.rule.ID]
		if h == nil {
			continue
		}
		set := map[time.Time]bool{}
		for _, a := range arrivals {
			h.affected(l.rule, a.Second, a.WrittenAt, set)
		}
		if len(set) == 0 {
			continue
		}
		ticks := make([]time.Time, 0, len(set))
		for t := range set {
			ticks = append(ticks, t)
		}
		sort.Slice(ticks, func(i, j int) bool { return ticks[i].Before(ticks[j]) })
		work[l] = sample(ticks, maxLateTicks)
	}
	s.mu.Unlock()
	for l, ticks := range work {
		s.log.Info("rows arrived after their window was evaluated; evaluating again", "rule", l.rule.ID, "ticks", len(ticks),
			"first", ticks[0], "last", ticks[len(ticks)-1])
		select {
		case l.late <- ticks:
		case <-l.stop:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// sample returns at most n of ts, evenly spread, keeping the first and last.
func sample(ts []time.Time, n int) []time.Time {
	if len(ts) <= n {
		return ts
	}
	out := make([]time.Time, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, ts[i*(len(ts)-1)/(n-1)])
	}
	return out
}
