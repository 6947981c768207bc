package event

import "strings"

// Route returns path with identifiers folded to {id}, so that requests to
// one endpoint group together: /v1/orders/ord_01H8XKZ/fills/17 becomes
// /v1/orders/{id}/fills/{id}. A segment is an identifier when it is all
// digits, a prefixed id (2–8 letters, '_', 6 or more letters or digits), 16
// or more hex digits and dashes (UUIDs, hashes), or an API key or its hint
// (bk_live_…, bk_test_…: the decoder has masked keys by then).
func Route(path string) string {
	// Most paths have no identifier segment: return them as they are,
	// building a new string only from the first identifier on.
	var b []byte
	start := 0
	for start <= len(path) {
		end := strings.IndexByte(path[start:], '/')
		if end < 0 {
			end = len(path)
		} else {
			end += start
		}
		seg := path[start:end]
		switch {
		case isID(seg):
			if b == nil {
				b = make([]byte, 0, len(path))
				b = append(b, path[:start]...)
			}
			b = append(b, "{id}"...)
		case b != nil:
			b = append(b, seg...)
		}
		if b != nil && end < len(path) {
			b = append(b, '/')
		}
		start = end + 1
	}
	if b == nil {
		return path
	}
	return string(b)
}

func isID(s string) bool {
	if s == "" {
		return false
	}
	if strings.HasPrefix(s, "bk_live_") || strings.HasPrefix(s, "bk_test_") {
		return true
	}
	digits, hex := true, len(s) >= 16
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			digits = false
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			hex = false
		}
	}
	if digits || hex {
		return true
	}
	u := strings.IndexByte(s, '_')
	if u < 2 || u > 8 || len(s)-u-1 < 6 {
		return false
	}
	for i := 0; i < u; i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	for i := u + 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
