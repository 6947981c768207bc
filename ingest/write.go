package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditwatch/auditwatch/ingest/consume"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// unit is what one Sink.Write stores: a batch, or a part of one being
// isolated after a rejection.
type unit struct {
	rows *event.Rows
	dead []event.DeadLetter
}

func (u *unit) len() int { return u.rows.Len() + len(u.dead) }

// write stores b: it drops the messages already stored (redelivered ones,
// found by asking the Sink), writes the rest retrying errors that may pass,
// and when ClickHouse refuses the data, isolates the refused rows into
// dead letters and writes everything else. It returns an error only when
// ctx ends first.
func (in *Ingester) write(ctx context.Context, b *batch) error {
	start := in.now()
	topics := make(map[int32]string, len(b.parts))
	check := make(map[int32]int64)
	for k, p := range b.parts {
		topics[int32(k.partition)] = k.topic
		switch {
		case p.recheckFrom >= 0:
			check[int32(k.partition)] = p.recheckFrom
		case in.carry[k]:
			check[int32(k.partition)] = p.first
		}
	}
	u := &unit{rows: &b.rows, dead: b.dead}
	carry, err := in.writeUnit(ctx, u, topics, check)
	if errors.Is(err, ErrRejected) {
		err = in.isolate(ctx, u, topics, err)
	}
	if err != nil {
		return err
	}
	for k := range b.parts {
		if carry[int32(k.partition)] {
			in.carry[k] = true
		} else {
			delete(in.carry, k)
		}
	}
	if !in.sinkOK.Swap(true) {
		in.log.Info("writes to ClickHouse recovered")
	}
	in.metrics.writeLatency.Observe(in.now().Sub(start).Seconds())
	in.metrics.batchRows.Observe(float64(b.len()))
	return nil
}

// writeUnit writes u until it is stored, ClickHouse rejects it (an error
// wrapping ErrRejected) or ctx ends. Before writing, and again after every
// failure (whose outcome is unknown: part of u may be stored), it drops
// what is already stored from the partitions in check (partition → first
// offset to check; all of u after a failure). carry reports, per partition
// checked, whether u's last message was found stored: the next batch may
// hold more.
func (in *Ingester) writeUnit(ctx context.Context, u *unit, topics map[int32]string, check map[int32]int64) (carry map[int32]bool, err error) {
	bo := consume.Backoff{Min: in.opts.RetryMin, Max: in.opts.RetryMax}
	for attempt := 1; ; attempt++ {
		if len(check) > 0 {
			c, err := in.dropStoredRetry(ctx, u, topics, check)
			if err != nil {
				return carry, err
			}
			carry, check = c, nil
		}
		if u.len() == 0 {
			return carry, nil
		}
		err := in.sink.Write(ctx, u.rows, u.dead)
		if err == nil {
			in.metrics.rowsOut.Add(float64(u.rows.Len()))
			in.metrics.deadOut.Add(float64(len(u.dead)))
			return carry, nil
		}
		if errors.Is(err, ErrRejected) {
			return carry, err
		}
		in.sinkOK.Store(false)
		in.metrics.writeErrors.Inc()
		delay := bo.Next()
		in.log.Warn("write batch failed; retrying", "attempt", attempt, "rows", u.rows.Len(), "dead_letters", len(u.dead), "retry_in", delay, "err", err)
		if !sleep(ctx, delay) {
			return carry, fmt.Errorf("write batch: gave up after %d attempts: %w", attempt, err)
		}
		check = u.spans(topics, nil).froms()
	}
}

// isolate writes u after ClickHouse rejected it: dead letters alone, then
// the rows by halves (by partition when the rejection was the partition
// limit) until the rows refused on their own are found; those become dead
// letters with reason rejected and the server's error, masked. What the
// rejected write stored before failing (the Sink may write in several
// inserts) is dropped first.
func (in *Ingester) isolate(ctx context.Context, u *unit, topics map[int32]string, cause error) error {
	in.log.Warn("ClickHouse rejected a batch; isolating the refused rows", "rows", u.rows.Len(), "dead_letters", len(u.dead), "err", secret.Redact(cause.Error()))
	if _, err := in.dropStoredRetry(ctx, u, topics, u.spans(topics, nil).froms()); err != nil {
		return err
	}
	if len(u.dead) > 0 {
		if err := in.isolateDead(ctx, u.dead, topics); err != nil {
			return err
		}
	}
	if u.rows.Len() == 0 {
		return nil
	}
	idx := make([]int, u.rows.Len())
	for i := range idx {
		idx[i] = i
	}
	return in.isolateRows(ctx, u.rows, idx, topics, cause)
}

// isolateRows writes rows idx of all, splitting on rejection.
func (in *Ingester) isolateRows(ctx context.Context, all *event.Rows, idx []int, topics map[int32]string, cause error) error {
	if len(idx) == 1 {
		i := idx[0]
		dl := rejectedRow(all, i, topics, cause, in.opts.MaxDeadLetterRaw, in.now().UTC())
		in.log.Warn("row rejected by ClickHouse; dead-lettered", "topic", dl.Topic, "partition", dl.Partition, "offset", dl.Offset, "err", dl.Error)
		in.metrics.rejectedRows.Inc()
		in.metrics.deadLetters.WithLabelValues(ReasonRejected).Inc()
		return in.isolateDead(ctx, []event.DeadLetter{dl}, topics)
	}
	in.metrics.splits.Inc()
	for _, part := range splitRows(all, idx, errors.Is(cause, ErrPartitionLimit)) {
		sub := &unit{rows: all.Subset(part)}
		_, err := in.writeUnit(ctx, sub, topics, nil)
		switch {
		case err == nil:
		case errors.Is(err, ErrRejected):
			if err := in.isolateRows(ctx, all, part, topics, err); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return nil
}

// isolateDead writes dead letters, by halves on rejection; one that
// ClickHouse refuses on its own is logged (masked) and counted, not stored.
func (in *Ingester) isolateDead(ctx context.Context, dead []event.DeadLetter, topics map[int32]string) error {
	_, err := in.writeUnit(ctx, &unit{rows: &event.Rows{}, dead: dead}, topics, deadFroms(dead))
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, ErrRejected):
		return err
	case len(dead) == 1:
		d := dead[0]
		in.metrics.deadRefused.Inc()
		in.log.Error("ClickHouse refused a dead letter; it is not stored", "topic", d.Topic, "partition", d.Partition, "offset", d.Offset,
			"reason", d.Reason, "err", secret.Redact(err.Error()))
		return nil
	}
	in.metrics.splits.Inc()
	h := len(dead) / 2
	if err := in.isolateDead(ctx, dead[:h], topics); err != nil {
		return err
	}
	return in.isolateDead(ctx, dead[h:], topics)
}

// splitRows splits idx in two: by event day (the access_log partition)
// when byDay and the rows span more than one, else by halves.
func splitRows(all *event.Rows, idx []int, byDay bool) [][]int {
	if byDay {
		days := make(map[int64][]int)
		var order []int64
		for _, i := range idx {
			d := all.TSMilli[i] / 86_400_000
			if _, ok := days[d]; !ok {
				order = append(order, d)
			}
			days[d] = append(days[d], i)
		}
		if len(order) > 1 {
			slices.Sort(order)
			var a, b []int
			for j, d := range order {
				if j < len(order)/2 {
					a = append(a, days[d]...)
				} else {
					b = append(b, days[d]...)
				}
			}
			return [][]int{a, b}
		}
	}
	h := len(idx) / 2
	return [][]int{idx[:h], idx[h:]}
}

// rejectedRow is the dead letter of row i, which ClickHouse refused: the
// decoded row as JSON (it holds no key: the decoder kept only fingerprints
// and hints) and the server's error, both masked.
func rejectedRow(all *event.Rows, i int, topics map[int32]string, cause error, maxRaw int, now time.Time) event.DeadLetter {
	r := all.Row(i)
	raw, _ := json.Marshal(r)
	text := secret.Redact(string(raw))
	if maxRaw > 0 && len(text) > maxRaw {
		text = text[:maxRaw]
	}
	msg := secret.Redact(cause.Error())
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	return event.DeadLetter{
		ReceivedAt: now, Topic: topics[r.KafkaPartition], Partition: r.KafkaPartition, Offset: r.KafkaOffset,
		Reason: event.Reason(ReasonRejected), Error: msg, Raw: text, RawSize: uint32(len(raw)),
	}
}

// span is what a unit holds of one partition.
type span struct {
	topic        string
	from, to     int64
	minTS, maxTS int64 // unix ms of its rows
	hasRows      bool
}

type spans map[int32]*span

// spans returns u's offset and time range per partition, limited to the
// partitions in only (all when nil).
func (u *unit) spans(topics map[int32]string, only map[int32]int64) spans {
	out := make(spans)
	get := func(p int32, off int64) *span {
		if only != nil {
			if from, ok := only[p]; !ok || off < from {
				return nil
			}
		}
		s := out[p]
		if s == nil {
			s = &span{topic: topics[p], from: off, to: off}
			out[p] = s
		}
		s.from, s.to = min(s.from, off), max(s.to, off)
		return s
	}
	for i := 0; i < u.rows.Len(); i++ {
		if s := get(u.rows.KafkaPartition[i], u.rows.KafkaOffset[i]); s != nil {
			ts := u.rows.TSMilli[i]
			if !s.hasRows {
				s.minTS, s.maxTS, s.hasRows = ts, ts, true
			}
			s.minTS, s.maxTS = min(s.minTS, ts), max(s.maxTS, ts)
		}
	}
	for _, d := range u.dead {
		if s := get(d.Partition, d.Offset); s != nil && s.topic == "" {
			s.topic = d.Topic
		}
	}
	return out
}

// froms returns each span's first offset.
func (s spans) froms() map[int32]int64 {
	out := make(map[int32]int64, len(s))
	for p, sp := range s {
		out[p] = sp.from
	}
	return out
}

func deadFroms(dead []event.DeadLetter) map[int32]int64 {
	out := make(map[int32]int64)
	for _, d := range dead {
		if f, ok := out[d.Partition]; !ok || d.Offset < f {
			out[d.Partition] = d.Offset
		}
	}
	return out
}

// dropStored removes from u the messages, in the partitions and from the
// offsets in check, that are already stored: a row whose partition, offset
// and request id are in access_log, a message whose offset is in
// ingest_errors. It returns, per partition checked, whether the last
// message of u in it was stored.
func (in *Ingester) dropStored(ctx context.Context, u *unit, topics map[int32]string, check map[int32]int64) (map[int32]bool, error) {
	carry := make(map[int32]bool)
	var ranges []string
	rowsStored := make(map[int32]map[int64]string)
	deadStored := make(map[int32]map[int64]bool)
	for p, sp := range u.spans(topics, check) {
		q := StoredQuery{Topic: sp.topic, Partition: p, From: sp.from, To: sp.to, RowsToo: sp.hasRows}
		if sp.hasRows {
			q.MinTS, q.MaxTS = time.UnixMilli(sp.minTS).UTC(), time.UnixMilli(sp.maxTS).UTC()
		}
		in.metrics.storedChecks.Inc()
		r, d, err := in.stored.Stored(ctx, q)
		if err != nil {
			return nil, err
		}
		rowsStored[p], deadStored[p] = r, d
		if len(r)+len(d) > 0 {
			ranges = append(ranges, fmt.Sprintf("%s/%d@%d-%d", sp.topic, p, sp.from, sp.to))
		}
		_, last := r[sp.to]
		carry[p] = last || d[sp.to]
	}
	stored := func(p int32, off int64, requestID string) bool {
		if deadStored[p][off] {
			return true
		}
		id, ok := rowsStored[p][off]
		return ok && (requestID == "" || id == requestID)
	}
	var keep []int
	dropped := 0
	for i := 0; i < u.rows.Len(); i++ {
		p := u.rows.KafkaPartition[i]
		if from, ok := check[p]; ok && u.rows.KafkaOffset[i] >= from && stored(p, u.rows.KafkaOffset[i], u.rows.RequestID.Get(i)) {
			dropped++
			continue
		}
		keep = append(keep, i)
	}
	if len(keep) < u.rows.Len() {
		u.rows = u.rows.Subset(keep)
	}
	dead := u.dead[:0:0]
	for _, d := range u.dead {
		if from, ok := check[d.Partition]; ok && d.Offset >= from && stored(d.Partition, d.Offset, "") {
			dropped++
			continue
		}
		dead = append(dead, d)
	}
	if len(dead) < len(u.dead) {
		u.dead = dead
	}
	if dropped > 0 {
		in.metrics.redelivered.Add(float64(dropped))
		slices.Sort(ranges)
		in.log.Info("skipped messages already stored (read again after a restart, rebalance, failed commit or failed write)",
			"messages", dropped, "checked", strings.Join(ranges, " "))
	}
	return carry, nil
}

// dropStoredRetry is dropStored retried with backoff until it succeeds or
// ctx ends. Without a StoredReader it does nothing.
func (in *Ingester) dropStoredRetry(ctx context.Context, u *unit, topics map[int32]string, check map[int32]int64) (map[int32]bool, error) {
	if in.stored == nil || len(check) == 0 {
		return nil, nil
	}
	bo := consume.Backoff{Min: in.opts.RetryMin, Max: in.opts.RetryMax}
	for attempt := 1; ; attempt++ {
		carry, err := in.dropStored(ctx, u, topics, check)
		if err == nil {
			return carry, nil
		}
		in.sinkOK.Store(false)
		in.metrics.writeErrors.Inc()
		delay := bo.Next()
		in.log.Warn("check for stored messages failed; retrying", "attempt", attempt, "retry_in", delay, "err", err)
		if !sleep(ctx, delay) {
			return nil, fmt.Errorf("check stored messages: gave up after %d attempts: %w", attempt, err)
		}
	}
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
