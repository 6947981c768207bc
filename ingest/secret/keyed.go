package secret

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"
)

// MinFingerprintKeyBytes is the shortest fingerprint secret accepted: a
// shorter one could itself be guessed, which would defeat the point.
const MinFingerprintKeyBytes = 16

// Fingerprinter computes key fingerprints. The zero value computes the plain
// fingerprint ([Fingerprint]: SHA-256); one made by [NewFingerprinter] with a
// server-side secret computes HMAC-SHA256 keyed with that secret. Both give
// the first 16 hex digits, so the format (and keys.IsFingerprint) is the
// same; the values differ.
//
// A keyed fingerprint cannot be reversed by hashing guesses without the
// secret: a weak secret pasted as an API key (a password in the
// Authorization header) is not recoverable from the stored 64-bit hash.
//
// A Fingerprinter is safe for concurrent use and cheap to copy.
type Fingerprinter struct {
	k *keyed
}

type keyed struct {
	pool  sync.Pool // of hash.Hash (HMAC-SHA256 with the secret)
	check string
}

// NewFingerprinter returns a Fingerprinter keyed with secretKey, or the plain
// one when secretKey is empty. secretKey is copied.
func NewFingerprinter(secretKey []byte) Fingerprinter {
	if len(secretKey) == 0 {
		return Fingerprinter{}
	}
	sk := append([]byte(nil), secretKey...)
	k := &keyed{}
	k.pool.New = func() any { return hmac.New(sha256.New, sk) }
	m := hmac.New(sha256.New, sk)
	m.Write([]byte("auditwatch fingerprint key check"))
	k.check = hex.EncodeToString(m.Sum(nil)[:4])
	return Fingerprinter{k: k}
}

// Keyed reports whether f computes HMACs (a secret was given).
func (f Fingerprinter) Keyed() bool { return f.k != nil }

// Check returns a short value that identifies the secret without revealing
// it (8 hex digits of an HMAC of a fixed text), for logs: two components
// fingerprint alike exactly when their checks are equal. It is "" for the
// plain Fingerprinter.
func (f Fingerprinter) Check() string {
	if f.k == nil {
		return ""
	}
	return f.k.check
}

// Fingerprint returns the first 16 hex digits of HMAC-SHA256(secret, key)
// for a keyed f, of SHA-256(key) otherwise; "" for an empty key.
func (f Fingerprinter) Fingerprint(key string) string {
	if key == "" {
		return ""
	}
	if f.k == nil {
		return Fingerprint(key)
	}
	h := f.k.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	f.k.pool.Put(h)
	return hexOf8(sum[:8])
}

// LoadFingerprintKey reads the fingerprint secret from path: the file's
// content without surrounding white space, at least
// MinFingerprintKeyBytes long. warning is non-empty when the file may be
// read by its group or by others. Neither the error nor the warning quotes
// the content.
func LoadFingerprintKey(path string) (key []byte, warning string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("fingerprint key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, "", fmt.Errorf("fingerprint key file %s: not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("fingerprint key file: %w", err)
	}
	key = []byte(strings.TrimSpace(string(b)))
	clear(b)
	switch {
	case len(key) == 0:
		return nil, "", fmt.Errorf("fingerprint key file %s: empty", path)
	case len(key) < MinFingerprintKeyBytes:
		n := len(key)
		clear(key)
		return nil, "", fmt.Errorf("fingerprint key file %s: %d bytes, want at least %d (e.g. openssl rand -hex 32)", path, n, MinFingerprintKeyBytes)
	}
	if perm := st.Mode().Perm(); perm&0o044 != 0 {
		warning = fmt.Sprintf("fingerprint key file %s has mode %04o: readable by group or others; chmod 0400 it (Kubernetes: defaultMode: 0400)", path, perm)
	}
	return key, warning, nil
}
