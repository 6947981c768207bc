package event

import (
	"math"
	"time"
)

// tsField decodes `ts`: an RFC 3339 string (fraction and offset optional; no
// offset means UTC) or a number of epoch milliseconds.
type tsField struct {
	t   time.Time
	set bool
}

var tsLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// setString sets f from an RFC 3339 string.
func (f *tsField) setString(s string) *Error {
	for _, layout := range tsLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			f.t, f.set = t.UTC().Truncate(time.Millisecond), true
			return nil
		}
	}
	if len(s) > 40 {
		s = truncate(s, 40) + "…"
	}
	return reject(ReasonBadTimestamp, "ts", "%q is not an RFC 3339 time", s)
}

// setMillis sets f from epoch milliseconds.
func (f *tsField) setMillis(ms float64) *Error {
	if math.IsNaN(ms) || math.Abs(ms) > 1e15 {
		return reject(ReasonBadTimestamp, "ts", "epoch milliseconds out of range")
	}
	f.t, f.set = time.UnixMilli(int64(ms)).UTC(), true
	return nil
}
