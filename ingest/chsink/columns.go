package chsink

import (
	"time"

	"github.com/auditwatch/auditwatch/ingest/event"
)

// columns are the driver's inputs for one block of an insert, built from
// event.Rows without copying strings (views into the rows' buffers) and
// reused between blocks and inserts, so that they never exceed a block.
type columns struct {
	ts          []time.Time
	tsMS        []uint16
	str         [17][]string
	signatureTS []*uint32
	clockOffset []*int32
	ingestedAt  []time.Time
}

// fill sets the columns to rows [from, to) of r.
func (c *columns) fill(r *event.Rows, from, to int, now time.Time) {
	c.ts, c.tsMS, c.ingestedAt = c.ts[:0], c.tsMS[:0], c.ingestedAt[:0]
	c.signatureTS, c.clockOffset = c.signatureTS[:0], c.clockOffset[:0]
	for i := from; i < to; i++ {
		ms := r.TSMilli[i]
		c.ts = append(c.ts, time.Unix(ms/1000, 0).UTC())
		c.tsMS = append(c.tsMS, uint16(ms%1000))
		c.ingestedAt = append(c.ingestedAt, now)
		if r.HasSignatureTS[i] {
			c.signatureTS = append(c.signatureTS, &r.SignatureTS[i])
			c.clockOffset = append(c.clockOffset, &r.ClockOffsetS[i])
		} else {
			c.signatureTS = append(c.signatureTS, nil)
			c.clockOffset = append(c.clockOffset, nil)
		}
	}
	for i, col := range [...]*event.StrCol{&r.RequestID, &r.Method, &r.Path, &r.ErrorCode, &r.ClientIP, &r.ClientNet,
		&r.KeyID, &r.KeySource, &r.KeyFP, &r.KeyHint, &r.Env, &r.AuthMethod, &r.OAuthClientID, &r.AccountID,
		&r.UserAgent, &r.Origin, &r.Route} {
		c.str[i] = col.Views(c.str[i][:0], from, to)
	}
}

// slices returns the columns of rows [from, to) of r (the range of the last
// fill) in accessLogColumns order. The string views are valid until the
// rows change.
func (c *columns) slices(r *event.Rows, from, to int) []any {
	s := &c.str
	return []any{
		c.ts, c.tsMS, s[0], s[1], s[2], s[16], r.Status[from:to], s[3], s[4], s[5],
		s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13],
		r.Signed[from:to], c.signatureTS, c.clockOffset, s[14], s[15], r.LatencyMS[from:to], r.BytesIn[from:to], r.BytesOut[from:to],
		r.KafkaPartition[from:to], r.KafkaOffset[from:to], c.ingestedAt,
	}
}

// release drops the views so the rows' buffers are not kept alive through
// them.
func (c *columns) release() {
	for i := range c.str {
		clear(c.str[i])
	}
	clear(c.signatureTS)
	clear(c.clockOffset)
}
