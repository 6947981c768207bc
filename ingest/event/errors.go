package event

import (
	"errors"
	"fmt"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Reason classifies why an event was rejected. The set is small and fixed so
// it can label metrics.
type Reason string

// Rejection reasons.
const (
	ReasonTooLarge     Reason = "too_large"
	ReasonInvalidUTF8  Reason = "invalid_utf8"
	ReasonNotJSON      Reason = "not_json"
	ReasonWrongType    Reason = "wrong_type"
	ReasonMissingField Reason = "missing_field"
	ReasonBadValue     Reason = "bad_value"
	ReasonBadTimestamp Reason = "bad_timestamp"
	// ReasonTooOld: the event is older than the decoder's MaxPast (by
	// default the access-log retention), so it would be written into a
	// partition that retention drops.
	ReasonTooOld Reason = "too_old"
)

// Reasons lists every Reason, for pre-registering metric labels.
var Reasons = []Reason{ReasonTooLarge, ReasonInvalidUTF8, ReasonNotJSON, ReasonWrongType, ReasonMissingField, ReasonBadValue, ReasonBadTimestamp, ReasonTooOld}

// Error is a rejected event: a reason class and a message that names the
// field. Messages never quote an API key.
type Error struct {
	Reason Reason
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Reason, e.Msg)
	}
	return fmt.Sprintf("%s: field %q: %s", e.Reason, e.Field, e.Msg)
}

// reject builds an *Error. The message is scrubbed of key-like strings,
// since it may quote input.
func reject(r Reason, field, format string, args ...any) *Error {
	return &Error{Reason: r, Field: field, Msg: secret.Redact(fmt.Sprintf(format, args...))}
}

// ReasonOf returns the Reason of err, or ReasonBadValue when err is not an
// *Error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonBadValue
}
