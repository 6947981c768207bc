package event

import (
	"time"
	"unsafe"
)

// Rows holds decoded rows column by column in pointer-free buffers, so that
// a batch of 100,000 rows costs the garbage collector nothing to scan and
// costs one copy to build. The zero value is ready to use; Reset keeps the
// memory for the next batch.
type Rows struct {
	n int

	TSMilli                                                          []int64
	RequestID, Method, Path, Route, ErrorCode, ClientIP, ClientNet   StrCol
	KeyID, KeySource, KeyFP, KeyHint, Env, AuthMethod, OAuthClientID StrCol
	AccountID, UserAgent, Origin                                     StrCol
	Status                                                           []uint16
	Signed                                                           []uint8
	SignatureTS                                                      []uint32
	HasSignatureTS                                                   []bool
	ClockOffsetS                                                     []int32
	KafkaPartition                                                   []int32
	KafkaOffset                                                      []int64
	LatencyMS                                                        []float32
	BytesIn, BytesOut                                                []uint64
}

// Len returns the number of rows.
func (c *Rows) Len() int { return c.n }

// Append adds r.
func (c *Rows) Append(r *Row) {
	c.n++
	c.TSMilli = append(c.TSMilli, r.TS.UnixMilli())
	c.RequestID.Append(r.RequestID)
	c.Method.Append(r.Method)
	c.Path.Append(r.Path)
	c.Route.Append(r.Route)
	c.ErrorCode.Append(r.ErrorCode)
	c.ClientIP.Append(r.ClientIP)
	c.ClientNet.Append(r.ClientNet)
	c.KeyID.Append(r.KeyID)
	c.KeySource.Append(r.KeySource)
	c.KeyFP.Append(r.KeyFP)
	c.KeyHint.Append(r.KeyHint)
	c.Env.Append(r.Env)
	c.AuthMethod.Append(r.AuthMethod)
	c.OAuthClientID.Append(r.OAuthClientID)
	c.AccountID.Append(r.AccountID)
	c.UserAgent.Append(r.UserAgent)
	c.Origin.Append(r.Origin)
	c.Status = append(c.Status, r.Status)
	var signed uint8
	if r.Signed {
		signed = 1
	}
	c.Signed = append(c.Signed, signed)
	var sts uint32
	var off int32
	if r.SignatureTS != nil {
		sts, off = *r.SignatureTS, *r.ClockOffsetS
	}
	c.SignatureTS = append(c.SignatureTS, sts)
	c.ClockOffsetS = append(c.ClockOffsetS, off)
	c.HasSignatureTS = append(c.HasSignatureTS, r.SignatureTS != nil)
	c.KafkaPartition = append(c.KafkaPartition, r.KafkaPartition)
	c.KafkaOffset = append(c.KafkaOffset, r.KafkaOffset)
	c.LatencyMS = append(c.LatencyMS, r.LatencyMS)
	c.BytesIn = append(c.BytesIn, r.BytesIn)
	c.BytesOut = append(c.BytesOut, r.BytesOut)
}

// TS returns row i's timestamp.
func (c *Rows) TS(i int) time.Time { return time.UnixMilli(c.TSMilli[i]).UTC() }

// Reset empties c, keeping its memory.
func (c *Rows) Reset() {
	c.n = 0
	c.TSMilli = c.TSMilli[:0]
	for _, s := range c.strCols() {
		s.Reset()
	}
	c.Status, c.Signed, c.SignatureTS, c.HasSignatureTS = c.Status[:0], c.Signed[:0], c.SignatureTS[:0], c.HasSignatureTS[:0]
	c.ClockOffsetS, c.KafkaPartition, c.KafkaOffset = c.ClockOffsetS[:0], c.KafkaPartition[:0], c.KafkaOffset[:0]
	c.LatencyMS, c.BytesIn, c.BytesOut = c.LatencyMS[:0], c.BytesIn[:0], c.BytesOut[:0]
}

func (c *Rows) strCols() []*StrCol {
	return []*StrCol{&c.RequestID, &c.Method, &c.Path, &c.Route, &c.ErrorCode, &c.ClientIP, &c.ClientNet, &c.KeyID, &c.KeySource,
		&c.KeyFP, &c.KeyHint, &c.Env, &c.AuthMethod, &c.OAuthClientID, &c.AccountID, &c.UserAgent, &c.Origin}
}

// StrCol is a column of strings stored back to back in one byte buffer.
type StrCol struct {
	buf  []byte
	ends []uint32
}

// Append adds s.
func (s *StrCol) Append(v string) {
	s.buf = append(s.buf, v...)
	s.ends = append(s.ends, uint32(len(s.buf)))
}

// Len returns the number of strings.
func (s *StrCol) Len() int { return len(s.ends) }

// Get returns string i as a copy.
func (s *StrCol) Get(i int) string { return string(s.bytes(i)) }

func (s *StrCol) bytes(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.buf[start:s.ends[i]]
}

// Views appends to dst a string for each value i in [from, to) that shares
// memory with the column: valid only until the next Append or Reset, for
// handing the column to a driver without copying it.
func (s *StrCol) Views(dst []string, from, to int) []string {
	start := uint32(0)
	if from > 0 {
		start = s.ends[from-1]
	}
	for _, end := range s.ends[from:to] {
		if end == start {
			dst = append(dst, "")
		} else {
			dst = append(dst, unsafe.String(&s.buf[start], int(end-start)))
		}
		start = end
	}
	return dst
}

// Reset empties the column, keeping its memory.
func (s *StrCol) Reset() { s.buf, s.ends = s.buf[:0], s.ends[:0] }
