package event

import (
	"time"
	"unicode/utf8"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// DeadLetter is a message that could not be ingested, kept with its reason.
// Raw holds the message text with key-like strings masked, cut to a limit.
type DeadLetter struct {
	ReceivedAt time.Time
	Topic      string
	Partition  int32
	Offset     int64
	Reason     Reason
	Field      string
	Error      string
	Raw        string
	RawSize    uint32
	MessageKey string
}

// NewDeadLetter builds the dead letter for a message rejected with err,
// masking key-like strings and keeping at most maxRaw bytes of it. Invalid
// UTF-8 is replaced so the record is readable text.
func NewDeadLetter(err error, raw, key []byte, topic string, partition int32, offset int64, maxRaw int, now time.Time) DeadLetter {
	dl := DeadLetter{
		ReceivedAt: now, Topic: topic, Partition: partition, Offset: offset,
		Reason: ReasonOf(err), Error: err.Error(), RawSize: uint32(len(raw)),
		MessageKey: secret.Redact(toValidText(key, 256)),
	}
	if e, ok := err.(*Error); ok {
		dl.Field = e.Field
	}
	// Cut before masking so the regexes do bounded work, then mask: a key
	// cut in half by the limit is still masked, as its prefix is kept.
	dl.Raw = secret.Redact(toValidText(raw, maxRaw))
	return dl
}

// toValidText returns at most max bytes of b as valid UTF-8.
func toValidText(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]rune, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		out = append(out, r) // RuneError for invalid bytes
		b = b[size:]
	}
	return string(out)
}
