package secret

import (
	"regexp"
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
