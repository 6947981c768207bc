package gen

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e to buf as one JSON object in the ingest contract's
// field order and returns the extended buffer. It does not allocate beyond
// growing buf and never fails: invalid UTF-8 is replaced by U+FFFD as
// encoding/json does, and a non-finite LatencyMS is written as 0. The
// timestamp is written as RFC 3339 UTC with milliseconds, e.g.
// "2026-11-27T10:00:00.123Z".
func (e *Event) AppendJSON(buf []byte) []byte {
	b := append(buf, `{"ts":"`...)
	b = appendTime(b, e.TS)
	b = append(b, `","request_id":`...)
	b = appendString(b, e.RequestID)
	b = append(b, `,"method":`...)
	b = appendString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, e.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	if e.ErrorCode != "" {
		b = append(b, `,"error_code":`...)
		b = appendString(b, e.ErrorCode)
	}
	b = append(b, `,"client_ip":`...)
	b = appendString(b, e.ClientIP)
	if e.APIKey != "" {
		b = append(b, `,"api_key":`...)
		b = appendString(b, e.APIKey)
	}
	if e.KeyID != "" {
		b = append(b, `,"key_id":`...)
		b = appendString(b, e.KeyID)
	}
	b = append(b, `,"auth_method":`...)
	b = appendString(b, e.AuthMethod)
	if e.OAuthClientID != "" {
		b = append(b, `,"oauth_client_id":`...)
		b = appendString(b, e.OAuthClientID)
	}
	if e.Env != "" {
		b = append(b, `,"env":`...)
		b = appendString(b, e.Env)
	}
	if e.Signed {
		b = append(b, `,"signed":true`...)
	} else {
		b = append(b, `,"signed":false`...)
	}
	if e.SignatureTS != 0 {
		b = append(b, `,"signature_ts":`...)
		b = strconv.AppendInt(b, e.SignatureTS, 10)
	}
	if e.UserAgent != "" {
		b = append(b, `,"user_agent":`...)
		b = appendString(b, e.UserAgent)
	}
	if e.Origin != "" {
		b = append(b, `,"origin":`...)
		b = appendString(b, e.Origin)
	}
	b = append(b, `,"latency_ms":`...)
	b = appendLatency(b, e.LatencyMS)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, int64(e.BytesIn), 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, int64(e.BytesOut), 10)
	if e.AccountID != "" {
		b = append(b, `,"account_id":`...)
		b = appendString(b, e.AccountID)
	}
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON, so encoding/json and
// compatible libraries produce the same bytes. It never returns an error.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 512)), nil
}

// appendTime writes t in UTC as 2006-01-02T15:04:05.000Z. Years outside
// 0000–9999 fall back to time.Time.AppendFormat.
func appendTime(b []byte, t time.Time) []byte {
	const msPerDay = 86_400_000
	ms := t.UnixMilli()
	days := ms / msPerDay
	rem := ms % msPerDay
	if rem < 0 {
		days--
		rem += msPerDay
	}
	y, m, d := civilFromDays(days)
	if y < 0 || y > 9999 {
		return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	}
	hh, mm, ss, milli := rem/3_600_000, rem/60_000%60, rem/1000%60, rem%1000
	b = append(b,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+hh/10), byte('0'+hh%10), ':',
		byte('0'+mm/10), byte('0'+mm%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), '.',
		byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z')
	return b
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func civilFromDays(days int64) (y, m, d int64) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// appendString writes s as a JSON string. Control characters, quotes and
// backslashes are escaped, as are U+2028 and U+2029 so the output is also
// safe inside JavaScript; invalid UTF-8 bytes become \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&15])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendLatency writes v as a JSON number. Values with at most two decimals,
// which is all the generator produces, take a fast exact path; anything else
// uses strconv with the shortest representation that parses back to v.
func appendLatency(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, '0')
	}
	if v >= 0 && v < 1e12 {
		k := math.Round(v * 100)
		if k/100 == v {
			ik := int64(k)
			b = strconv.AppendInt(b, ik/100, 10)
			if frac := ik % 100; frac != 0 {
				b = append(b, '.', byte('0'+frac/10))
				if frac%10 != 0 {
					b = append(b, byte('0'+frac%10))
				}
			}
			return b
		}
	}
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(b, v, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}
