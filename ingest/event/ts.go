package event

import (
	"bytes"
	"math"
	"strconv"
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

// UnmarshalJSON implements json.Unmarshaler.
func (f *tsField) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return reject(ReasonWrongType, "ts", "not a JSON string")
		}
		for _, layout := range tsLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				f.t, f.set = t.UTC().Truncate(time.Millisecond), true
				return nil
			}
		}
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return reject(ReasonBadTimestamp, "ts", "%q is not an RFC 3339 time", s)
	}
	ms, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return reject(ReasonWrongType, "ts", "got %s, want an RFC 3339 string or epoch milliseconds", kindOf(b))
	}
	if math.IsNaN(ms) || math.Abs(ms) > 1e15 {
		return reject(ReasonBadTimestamp, "ts", "epoch milliseconds out of range")
	}
	f.t, f.set = time.UnixMilli(int64(ms)).UTC(), true
	return nil
}

func kindOf(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "an object"
	case b[0] == '[':
		return "an array"
	case b[0] == 't' || b[0] == 'f':
		return "a boolean"
	}
	return "an invalid value"
}
