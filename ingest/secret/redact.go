package secret

import (
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
	text = secretField.ReplaceAllStringFunc(text, func(m string) string {
		sub := secretField.FindStringSubmatch(m)
		return sub[1] + Hint(sub[2]) + sub[3]
	})
	text = bearer.ReplaceAllStringFunc(text, func(m string) string {
		sub := bearer.FindStringSubmatch(m)
		return sub[1] + Hint(sub[2])
	})
	return redactKeys(text)
}

// redactKeys replaces Brokeret keys in text by their hints, leaving alone a
// key that is already masked (followed by the ellipsis of a hint).
func redactKeys(text string) string {
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
// "bearer" (any case), no double quote and no \u escape cannot match, and
// is returned as is without running a regular expression. It is meant for
// every free-text field on the ingest hot path.
func Mask(s string) string {
	if !maybeSecret(s) {
		return s
	}
	return Redact(s)
}

// maybeSecret reports whether Redact could change s.
func maybeSecret(s string) bool {
	return strings.Contains(s, "bk_") || strings.IndexByte(s, '"') >= 0 || strings.Contains(s, `\u`) || hasBearer(s)
}

// hasBearer reports whether s contains "bearer" in any case with something
// after it.
func hasBearer(s string) bool {
	for i := 0; i+6 < len(s); i++ {
		if s[i]|0x20 == 'b' && strings.EqualFold(s[i:i+6], "bearer") {
			return true
		}
	}
	return false
}

// Credential reports whether s as a whole is a credential rather than an
// identifier or text that mentions one: a Brokeret key (bk_live_… or
// bk_test_… with a body of 4 or more characters, not masked) or an
// Authorization value ("Bearer " and one token of 4 or more characters).
// It returns s without surrounding white space, to be handled like an
// api_key: fingerprinted and hinted, never stored.
func Credential(s string) (string, bool) {
	t := strings.TrimSpace(s)
	if strings.ContainsAny(t, " \t\n\r\f\v") {
		// Only "Bearer <token>" may hold a space.
		if len(t) < 7 || !strings.EqualFold(t[:6], "bearer") {
			return "", false
		}
		tok := strings.TrimLeft(t[6:], " \t\n\r\f\v")
		if len(tok) == len(t)-6 || len(tok) < 4 || strings.ContainsAny(tok, " \t\n\r\f\v") {
			return "", false
		}
		return t, true
	}
	if Env(t) == "" || len(t) < len(LivePrefix)+4 || strings.Contains(t, Ellipsis) {
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
