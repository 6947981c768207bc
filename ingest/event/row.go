// Package event is the access-log contract: it decodes one gateway JSON event
// into a Row ready for ClickHouse, deriving key identity, network and clock
// offset, or says precisely why the event is unusable.
package event

import (
	"strings"
	"time"
)

// Row is one decoded access-log event, shaped like the access_log table.
// It never holds a full API key: only its fingerprint and hint.
type Row struct {
	TS            time.Time // UTC, millisecond precision
	RequestID     string
	Method        string
	Path          string // without query string
	Route         string // Path with identifiers folded to {id}
	Status        uint16
	ErrorCode     string
	ClientIP      string // canonical form
	ClientNet     string // /24 for IPv4, /48 for IPv6
	KeyID         string // registry id when given, else the fingerprint
	KeySource     string // "registry", "fingerprint" or ""
	KeyFP         string // first 16 hex digits of SHA-256(api_key), or ""
	KeyHint       string // masked key for people
	Env           string // "live", "test" or ""
	AuthMethod    string
	OAuthClientID string
	AccountID     string
	Signed        bool
	SignatureTS   *uint32 // X-Brokeret-Timestamp, unix seconds
	ClockOffsetS  *int32  // SignatureTS − TS in seconds
	UserAgent     string
	Origin        string
	LatencyMS     float32
	BytesIn       uint64
	BytesOut      uint64

	// Where the event came from; set by the consumer, not the decoder.
	KafkaPartition int32
	KafkaOffset    int64
}

// own gives r copies of its strings, so that it no longer borrows a
// Scratch's memory (see DecodeBorrowed).
func (r *Row) own() {
	for _, s := range [...]*string{&r.RequestID, &r.Method, &r.Path, &r.Route, &r.ErrorCode, &r.ClientIP, &r.ClientNet,
		&r.KeyID, &r.KeySource, &r.KeyFP, &r.KeyHint, &r.Env, &r.AuthMethod, &r.OAuthClientID, &r.AccountID,
		&r.UserAgent, &r.Origin} {
		*s = strings.Clone(*s)
	}
}
