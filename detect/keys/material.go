package keys

import (
	"strings"
	"unicode"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// fieldError is a problem with one field of an import entry or event. Its
// message never quotes an API key.
type fieldError struct {
	field string
	msg   string
}

// material is what a source said about a key's secret: the full key (which
// is only ever fingerprinted), a fingerprint, a hint, an environment.
type material struct {
	apiKey, fingerprint, hint, env string
}

// resolve derives the fingerprint (with fpr: plain or keyed), hint and
// environment from m, checking that they agree. The full key is used only
// to compute them. envRequired makes a missing and underivable environment
// an error.
func (m material) resolve(fpr secret.Fingerprinter, envRequired bool) (fp, hint, env string, errs []fieldError) {
	fp = strings.ToLower(strings.TrimSpace(m.fingerprint))
	hint = strings.TrimSpace(m.hint)
	env = strings.TrimSpace(m.env)
	if fp != "" && !IsFingerprint(fp) {
		errs = append(errs, fieldError{"fingerprint", "want 16 hex digits (the first 16 of SHA-256, or of the HMAC with fingerprint_key_file, of the key)"})
		fp = ""
	}
	if hint != "" && (secret.Redact(hint) != hint || len(hint) > 64) {
		errs = append(errs, fieldError{"hint", "looks like a full key, not a masked hint; give the key as api_key instead"})
		hint = ""
	}
	derivedEnv := ""
	if m.apiKey != "" {
		if strings.Contains(m.apiKey, secret.Ellipsis) || strings.Contains(m.apiKey, "...") {
			errs = append(errs, fieldError{"api_key", "is masked, not a full key; give it as hint (or give the fingerprint)"})
		} else {
			kfp := fpr.Fingerprint(m.apiKey)
			if fp != "" && fp != kfp {
				errs = append(errs, fieldError{"fingerprint", "does not match api_key " + secret.Hint(m.apiKey)})
			}
			fp, hint = kfp, secret.Hint(m.apiKey)
			derivedEnv = secret.Env(m.apiKey)
		}
	} else if hint != "" {
		derivedEnv = secret.Env(hint)
	}
	switch {
	case env == "":
		env = derivedEnv
		if env == "" && envRequired && len(errs) == 0 {
			errs = append(errs, fieldError{"env", "required (live or test): no bk_live_/bk_test_ key prefix to derive it from"})
		}
	case env != EnvLive && env != EnvTest:
		errs = append(errs, fieldError{"env", "want live or test, got " + quote(env)})
	case derivedEnv != "" && env != derivedEnv:
		errs = append(errs, fieldError{"env", env + " contradicts the key prefix (" + derivedEnv + ")"})
	}
	return fp, hint, env, errs
}

// checkText validates a free-text identifier (id, account_id, owner): at
// most 256 bytes, no control characters, no API key inside. With noSpace,
// no white space either.
func checkText(field, s string, noSpace bool) *fieldError {
	switch {
	case len(s) > 256:
		return &fieldError{field, "longer than 256 bytes"}
	case secret.Redact(s) != s:
		return &fieldError{field, "contains something that looks like an API key"}
	}
	for _, r := range s {
		if unicode.IsControl(r) || noSpace && unicode.IsSpace(r) {
			return &fieldError{field, "must not contain control characters" + map[bool]string{true: " or spaces"}[noSpace]}
		}
	}
	return nil
}

// quote quotes s for an error message, masking anything key-like and cutting
// it to 60 bytes.
func quote(s string) string {
	s = secret.Redact(s)
	if len(s) > 60 {
		s = strings.ToValidUTF8(s[:60], "") + "…"
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
