package chsink

import (
	"time"

	"github.com/auditwatch/auditwatch/ingest/event"
)

// columns holds one batch in columnar form, reused between batches.
type columns struct {
	ts             []time.Time
	tsMS           []uint16
	requestID      []string
	method         []string
	path           []string
	status         []uint16
	errorCode      []string
	clientIP       []string
	clientNet      []string
	keyID          []string
	keySource      []string
	keyFP          []string
	keyHint        []string
	env            []string
	authMethod     []string
	oauthClientID  []string
	accountID      []string
	signed         []uint8
	signatureTS    []*uint32
	clockOffset    []*int32
	userAgent      []string
	origin         []string
	latencyMS      []float32
	bytesIn        []uint64
	bytesOut       []uint64
	kafkaPartition []int32
	kafkaOffset    []int64
	ingestedAt     []time.Time
}

func (c *columns) fill(rows []event.Row, now time.Time) {
	c.reset()
	for i := range rows {
		r := &rows[i]
		c.ts = append(c.ts, r.TS.Truncate(time.Second))
		c.tsMS = append(c.tsMS, uint16(r.TS.Nanosecond()/1e6))
		c.requestID = append(c.requestID, r.RequestID)
		c.method = append(c.method, r.Method)
		c.path = append(c.path, r.Path)
		c.status = append(c.status, r.Status)
		c.errorCode = append(c.errorCode, r.ErrorCode)
		c.clientIP = append(c.clientIP, r.ClientIP)
		c.clientNet = append(c.clientNet, r.ClientNet)
		c.keyID = append(c.keyID, r.KeyID)
		c.keySource = append(c.keySource, r.KeySource)
		c.keyFP = append(c.keyFP, r.KeyFP)
		c.keyHint = append(c.keyHint, r.KeyHint)
		c.env = append(c.env, r.Env)
		c.authMethod = append(c.authMethod, r.AuthMethod)
		c.oauthClientID = append(c.oauthClientID, r.OAuthClientID)
		c.accountID = append(c.accountID, r.AccountID)
		var signed uint8
		if r.Signed {
			signed = 1
		}
		c.signed = append(c.signed, signed)
		c.signatureTS = append(c.signatureTS, r.SignatureTS)
		c.clockOffset = append(c.clockOffset, r.ClockOffsetS)
		c.userAgent = append(c.userAgent, r.UserAgent)
		c.origin = append(c.origin, r.Origin)
		c.latencyMS = append(c.latencyMS, r.LatencyMS)
		c.bytesIn = append(c.bytesIn, r.BytesIn)
		c.bytesOut = append(c.bytesOut, r.BytesOut)
		c.kafkaPartition = append(c.kafkaPartition, r.KafkaPartition)
		c.kafkaOffset = append(c.kafkaOffset, r.KafkaOffset)
		c.ingestedAt = append(c.ingestedAt, now)
	}
}

// slices returns the columns in accessLogColumns order.
func (c *columns) slices() []any {
	return []any{
		c.ts, c.tsMS, c.requestID, c.method, c.path, c.status, c.errorCode, c.clientIP, c.clientNet,
		c.keyID, c.keySource, c.keyFP, c.keyHint, c.env, c.authMethod, c.oauthClientID, c.accountID,
		c.signed, c.signatureTS, c.clockOffset, c.userAgent, c.origin, c.latencyMS, c.bytesIn, c.bytesOut,
		c.kafkaPartition, c.kafkaOffset, c.ingestedAt,
	}
}

func (c *columns) reset() {
	c.ts, c.tsMS, c.requestID, c.method, c.path = c.ts[:0], c.tsMS[:0], c.requestID[:0], c.method[:0], c.path[:0]
	c.status, c.errorCode, c.clientIP, c.clientNet = c.status[:0], c.errorCode[:0], c.clientIP[:0], c.clientNet[:0]
	c.keyID, c.keySource, c.keyFP, c.keyHint, c.env = c.keyID[:0], c.keySource[:0], c.keyFP[:0], c.keyHint[:0], c.env[:0]
	c.authMethod, c.oauthClientID, c.accountID = c.authMethod[:0], c.oauthClientID[:0], c.accountID[:0]
	c.signed, c.signatureTS, c.clockOffset = c.signed[:0], c.signatureTS[:0], c.clockOffset[:0]
	c.userAgent, c.origin, c.latencyMS = c.userAgent[:0], c.origin[:0], c.latencyMS[:0]
	c.bytesIn, c.bytesOut, c.kafkaPartition, c.kafkaOffset, c.ingestedAt = c.bytesIn[:0], c.bytesOut[:0], c.kafkaPartition[:0], c.kafkaOffset[:0], c.ingestedAt[:0]
}
