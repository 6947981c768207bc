package secret

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

var (
	// bkKey matches Brokeret keys anywhere in free text.
	bkKey = regexp.MustCompile(`bk_(?:live|test)_[A-Za-z0-9_\-]{4,}`)
	// bearer matches an Authorization bearer credential.
	bearer = regexp.MustCompile(`(?i)(bearer\s+)([^\s"'\\,;]{4,})`)
	// secretField matches the value of JSON fields that carry credentials,
	// including a truncated value with no closing quote.
	secretField = regexp.MustCompile(`(?i)("(?:api_key|apikey|key|secret|api_secret|token|access_token|refresh_token|client_secret|password|authorization|signature|x-brokeret-signature)"\s*:\s*")((?:[^"\\]|\\.)*)("?)`)
)

// Redact returns text with every key-like string replaced by its Hint: Brokeret
// keys anywhere, bearer tokens, and the values of JSON fields named like
// credentials (api_key, secret, token, signature, …). It is meant for raw
// input kept for diagnosis (dead letters) and for error messages that may
// quote input; it is not a parser and errs on the side of masking.
func Redact(text string) string {
	if strings.Contains(text, `\u`) {
		// JSON may spell a key with escapes (bk\u005flive_…): mask the
		// text as it decodes.
		text = unescapeKeyChars(text)
	}
	// Each expression needs a literal that a fast search rules out first.
	if strings.IndexByte(text, '"') >= 0 {
		text = secretField.ReplaceAllStringFunc(text, func(m string) string {
			sub := secretField.FindStringSubmatch(m)
			return sub[1] + Hint(sub[2]) + sub[3]
		})
	}
	if hasBearer(text) {
		text = bearer.ReplaceAllStringFunc(text, func(m string) string {
			sub := bearer.FindStringSubmatch(m)
			return sub[1] + Hint(sub[2])
		})
	}
	return redactKeys(text)
}

// redactKeys replaces Brokeret keys in text by their hints, leaving alone a
// key that is already masked (followed by the ellipsis of a hint).
func redactKeys(text string) string {
	if !strings.Contains(text, "bk_") {
		return text
	}
	locs := bkKey.FindAllStringIndex(text, -1)
	if locs == nil {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, l := range locs {
		b.WriteString(text[last:l[0]])
		m := text[l[0]:l[1]]
		if strings.HasPrefix(text[l[1]:], Ellipsis) {
			b.WriteString(m)
		} else {
			b.WriteString(Hint(m))
		}
		last = l[1]
	}
	b.WriteString(text[last:])
	return b.String()
}

// Mask returns s with every key-like string replaced by its hint, like
// [Redact], but first makes a cheap check: text that holds no "bk_", no
// "bearer" (any case), no double quote and no backslash cannot match, and is
// returned as is without running a regular expression. It is meant for
// every free-text field on the ingest hot path.
func Mask(s string) string {
	if !maybeSecret(s) {
		return s
	}
	return Redact(s)
}

// maybeSecret reports whether Redact could change s: whether s holds "bk_",
// "bearer" in any case, a double quote (a JSON credential field) or a
// backslash (an escape). A few vectorised byte searches, no allocation.
func maybeSecret(s string) bool {
	return strings.IndexByte(s, '"') >= 0 || strings.IndexByte(s, '\\') >= 0 || strings.Contains(s, "bk_") || hasBearer(s)
}

// hasBearer reports whether s holds "bearer" in any case followed by
// something (the bearer expression, whose letters have no non-ASCII case
// folds, can match only then).
func hasBearer(s string) bool {
	for _, b := range [2]byte{'b', 'B'} {
		for i := strings.IndexByte(s, b); i >= 0; {
			if isBearer(s[i:]) {
				return true
			}
			j := strings.IndexByte(s[i+1:], b)
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	return false
}

// isBearer reports whether r starts with "bearer" in any case and goes on.
func isBearer[T string | []byte](r T) bool {
	return len(r) > 6 && r[1]|0x20 == 'e' && r[2]|0x20 == 'a' && r[3]|0x20 == 'r' && r[4]|0x20 == 'e' && r[5]|0x20 == 'r'
}

// Masker masks the strings decoded from one JSON message, knowing what the
// raw message can hide: see [MaskerFor].
type Masker struct {
	mode uint8
}

// Masker modes.
const (
	maskQuick    = iota // a string needs masking only if it holds "bk_"
	maskThorough        // the full check of Mask
	maskNothing         // no string but api_key's can hold a key
)

// MaskerFor returns a Masker for the strings decoded from the JSON message
// raw. When raw holds no backslash, every decoded string is a byte-for-byte
// piece of raw, so a string can hold a double quote, an escape or "bearer"
// only if raw does: for the usual message, with neither, Masker.Mask checks
// a string with one substring search for "bk_" — or with none, when every
// "bk_" of raw starts the value of a field named api_key (which the caller
// never stores).
func MaskerFor(raw []byte) Masker {
	if bytes.IndexByte(raw, '\\') >= 0 {
		return Masker{mode: maskThorough}
	}
	mode := uint8(maskNothing)
	for i := bytes.IndexByte(raw, 'b'); i >= 0; {
		r := raw[i:]
		if isBearer(r) {
			return Masker{mode: maskThorough}
		}
		if mode == maskNothing && len(r) > 2 && r[1] == 'k' && r[2] == '_' && !afterAPIKey(raw[:i]) {
			mode = maskQuick
		}
		j := bytes.IndexByte(r[1:], 'b')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	for i := bytes.IndexByte(raw, 'B'); i >= 0; {
		if isBearer(raw[i:]) {
			return Masker{mode: maskThorough}
		}
		j := bytes.IndexByte(raw[i+1:], 'B')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return Masker{mode: mode}
}

// afterAPIKey reports whether h ends with "api_key":" (white space allowed
// around the colon). The message holds no backslash, so such a quote
// cannot be inside a string: what follows starts api_key's value.
func afterAPIKey(h []byte) bool {
	const name = `"api_key"`
	n := len(h)
	if n == 0 || h[n-1] != '"' {
		return false
	}
	n--
	for n > 0 && isJSONSpace(h[n-1]) {
		n--
	}
	if n == 0 || h[n-1] != ':' {
		return false
	}
	n--
	for n > 0 && isJSONSpace(h[n-1]) {
		n--
	}
	return n >= len(name) && string(h[n-len(name):n]) == name
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// Mask is [Mask] for a string decoded from the Masker's message, other
// than api_key.
func (m Masker) Mask(s string) string {
	if m.mode == maskNothing {
		return s // inlined: the usual message costs no call per field
	}
	return m.mask(s)
}

func (m Masker) mask(s string) string {
	if m.mode == maskThorough {
		return Mask(s)
	}
	if !strings.Contains(s, "bk_") {
		return s
	}
	return Redact(s)
}

// Credential reports whether s as a whole is a credential rather than an
// identifier or text that mentions one: a Brokeret key (bk_live_… or
// bk_test_… with a body of 4 or more characters, not masked) or an
// Authorization value ("Bearer " and one token of 4 or more characters).
// It returns s without surrounding white space, to be handled like an
// api_key: fingerprinted and hinted, never stored.
func Credential(s string) (string, bool) {
	if len(s) < 11 || s[0]|0x20 != 'b' && s[0] > ' ' {
		return "", false // the common case: an ordinary identifier
	}
	t := strings.TrimSpace(s)
	if len(t) < 11 || t[0]|0x20 != 'b' {
		return "", false // the common case: an ordinary identifier
	}
	if Env(t) != "" {
		if len(t) < len(LivePrefix)+4 || strings.Contains(t, Ellipsis) || strings.ContainsAny(t, " \t\n\r\f\v") {
			return "", false
		}
		return t, true
	}
	if !strings.EqualFold(t[:6], "bearer") {
		return "", false
	}
	tok := strings.TrimLeft(t[6:], " \t\n\r\f\v")
	if len(tok) == len(t)-6 || len(tok) < 4 || strings.ContainsAny(tok, " \t\n\r\f\v") {
		return "", false
	}
	return t, true
}

// unescapeKeyChars replaces JSON \uXXXX escapes of the characters keys are
// made of (ASCII letters, digits, '_' and '-') by the characters, leaving
// every other escape alone, so that the text keeps its JSON structure.
func unescapeKeyChars(text string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+6 <= len(text); i++ {
		if text[i] != '\\' || text[i+1] != 'u' {
			continue
		}
		v, err := strconv.ParseUint(text[i+2:i+6], 16, 16)
		if err != nil {
			continue
		}
		c := byte(v)
		if v > 0x7f || !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			continue
		}
		if last == 0 {
			b.Grow(len(text))
		}
		b.WriteString(text[last:i])
		b.WriteByte(c)
		last = i + 6
		i += 5
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}
