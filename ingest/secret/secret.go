// Package secret derives safe identities from API keys and scrubs key-like
// strings from text. Nothing it returns contains a full key.
//
// The gateway logs the API key as presented by the client. It may be a full
// Brokeret secret (bk_live_… or bk_test_…), an already masked value, or garbage.
// auditwatch never stores it: it keeps a fingerprint (for joins), a hint (for
// people) and the environment named by the prefix.
package secret

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Key prefixes used by Brokeret.
const (
	LivePrefix = "bk_live_"
	TestPrefix = "bk_test_"
)

// Ellipsis separates the visible ends of a masked key.
const Ellipsis = "…"

// Fingerprint returns the first 16 hex digits of the SHA-256 of key, or "" for
// an empty key. It is stable across processes and versions, so it can join
// access logs with the key registry.
func Fingerprint(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return hexOf8(sum[:8])
}

// Env returns "live" or "test" from the key's prefix, or "" when the key has
// neither prefix.
func Env(key string) string {
	switch {
	case strings.HasPrefix(key, LivePrefix):
		return "live"
	case strings.HasPrefix(key, TestPrefix):
		return "test"
	}
	return ""
}

// Hint returns a masked form of key that a person can recognise and that never
// reveals more than a quarter of it: a known prefix is kept, then the first
// and last four characters of a body of 16 characters or more
// ("bk_live_a1b2…i9j0"), only the last two of a body of 8 to 15, and nothing
// of a shorter body. It returns "" for an empty key.
func Hint(key string) string {
	if key == "" {
		return ""
	}
	prefix, body := "", key
	for _, p := range [...]string{LivePrefix, TestPrefix} {
		if strings.HasPrefix(key, p) {
			prefix, body = p, key[len(p):]
			break
		}
	}
	if ascii(body) {
		// The usual key: bytes are runes, so no []rune copy.
		switch n := len(body); {
		case n >= 16:
			return prefix + body[:4] + Ellipsis + body[n-4:]
		case n >= 8:
			return prefix + Ellipsis + body[n-2:]
		default:
			return prefix + Ellipsis
		}
	}
	if !utf8.ValidString(body) {
		return prefix + Ellipsis
	}
	runes := []rune(body)
	switch n := len(runes); {
	case n >= 16:
		return prefix + string(runes[:4]) + Ellipsis + string(runes[n-4:])
	case n >= 8:
		return prefix + Ellipsis + string(runes[n-2:])
	default:
		return prefix + Ellipsis
	}
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hexOf8 returns the 8 bytes of b as 16 hex digits, allocating only the
// string.
func hexOf8(b []byte) string {
	var dst [16]byte
	hex.Encode(dst[:], b[:8])
	return string(dst[:])
}
