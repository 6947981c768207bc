package event

import (
	"bytes"
	"cmp"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Limits on field lengths. Longer free-text fields are truncated; longer
// identifiers are rejected, since a cut identifier could collide.
const (
	maxRequestID = 128
	maxID        = 256
	maxPath      = 2048
	maxUserAgent = 512
	maxOrigin    = 512
	maxErrorCode = 64
	maxMethod    = 16
)

// minTS is the earliest timestamp accepted: older ones are taken for a unit
// mistake (seconds given as milliseconds) or a broken clock.
var minTS = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Decoder turns raw Kafka message values into Rows. The zero value is not
// usable; use NewDecoder.
type Decoder struct {
	// MaxBytes rejects larger messages without parsing them.
	MaxBytes int
	// MaxFuture rejects events timestamped further than this after now.
	MaxFuture time.Duration
	// MaxPast, when positive, dead-letters events timestamped further than
	// this before now (too_old).
	MaxPast time.Duration
	// FingerprintKey, when set, makes fingerprints keyed (HMAC-SHA256, see
	// secret.Fingerprinter). Set it before the first Decode.
	FingerprintKey []byte

	fpOnce sync.Once
	fp     secret.Fingerprinter
}

// fingerprinter returns the Fingerprinter of FingerprintKey, made once.
func (d *Decoder) fingerprinter() secret.Fingerprinter {
	d.fpOnce.Do(func() { d.fp = secret.NewFingerprinter(d.FingerprintKey) })
	return d.fp
}

// NewDecoder returns a Decoder with the given limits; zero values take the
// defaults of 1 MiB and 24 hours.
func NewDecoder(maxBytes int, maxFuture time.Duration) *Decoder {
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	if maxFuture <= 0 {
		maxFuture = 24 * time.Hour
	}
	return &Decoder{MaxBytes: maxBytes, MaxFuture: maxFuture}
}

// wire is the JSON shape of an event (see parseWire). Sentinels mark absent
// numbers.
type wire struct {
	TS            tsField
	RequestID     string
	Method        string
	Path          string
	Status        int64
	ErrorCode     string
	ClientIP      string
	APIKey        string
	KeyID         string
	AuthMethod    string
	OAuthClientID string
	Env           string
	Signed        bool
	SignatureTS   int64
	UserAgent     string
	Origin        string
	LatencyMS     float64
	BytesIn       uint64
	BytesOut      uint64
	AccountID     string
}

const absent = math.MinInt64

// Decode parses one message value into a Row. now is the ingest time, used
// to reject timestamps in the far future or, with MaxPast, the past. A
// rejected message yields an *Error whose message never contains an API
// key, and an accepted Row holds none either: every free-text field is
// masked (secret.Mask), and an identifier that is itself a key is replaced
// (see row). Decode is safe for concurrent use.
func (d *Decoder) Decode(raw []byte, now time.Time) (Row, error) {
	s := scratches.Get().(*Scratch)
	defer scratches.Put(s)
	r, err := d.DecodeBorrowed(s, raw, now)
	if err != nil {
		return Row{}, err
	}
	r.own()
	return r, nil
}

// DecodeBorrowed is Decode for a caller that copies the row at once (as
// Rows.Append does), without allocating its strings: they may share memory
// with raw and with s, and are valid only while raw is unchanged and until s
// is used again.
func (d *Decoder) DecodeBorrowed(s *Scratch, raw []byte, now time.Time) (Row, error) {
	if len(raw) > d.MaxBytes {
		return Row{}, reject(ReasonTooLarge, "", "message of %d bytes exceeds the limit of %d", len(raw), d.MaxBytes)
	}
	if !utf8.Valid(raw) {
		return Row{}, reject(ReasonInvalidUTF8, "", "message is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Row{}, reject(ReasonNotJSON, "", "message is not a JSON object")
	}
	w, err := parseWire(s, trimmed)
	if err != nil {
		return Row{}, err
	}
	return w.row(now, d, secret.MaskerFor(trimmed))
}

// row validates w and builds the Row.
//
// No field keeps an API key. Free text (request_id, path, error_code,
// user_agent, origin, and key_id, account_id and oauth_client_id that merely
// mention a key) goes through the masker m (secret.Mask with a check made
// once for the whole message): a key inside becomes its hint.
// An identifier (key_id, account_id, oauth_client_id) that is itself a
// credential (secret.Credential: a bk_live_/bk_test_ key or "Bearer …") is
// handled as if it had been sent as api_key:
//
//   - the presented key is api_key, or when that is empty the first of
//     key_id, oauth_client_id, account_id that is a credential; its
//     fingerprint, hint and (when the event has no env) environment fill
//     key_fingerprint, key_hint and env;
//   - a key_id that is a credential becomes that credential's fingerprint,
//     with key_id_source "fingerprint" (also when api_key holds another
//     key, whose fingerprint stays in key_fingerprint);
//   - an account_id or oauth_client_id that is a credential becomes its
//     hint, so the row says a key was there without holding it.
func (w *wire) row(now time.Time, d *Decoder, m secret.Masker) (Row, error) {
	var r Row
	switch {
	case !w.TS.set:
		return r, reject(ReasonMissingField, "ts", "required")
	case w.RequestID == "":
		return r, reject(ReasonMissingField, "request_id", "required")
	case w.Method == "":
		return r, reject(ReasonMissingField, "method", "required")
	case w.Path == "":
		return r, reject(ReasonMissingField, "path", "required")
	case w.Status == absent:
		return r, reject(ReasonMissingField, "status", "required")
	case w.ClientIP == "":
		return r, reject(ReasonMissingField, "client_ip", "required")
	}
	if w.TS.t.Before(minTS) {
		return r, reject(ReasonBadTimestamp, "ts", "%s is before %s (seconds given where milliseconds are expected?)", w.TS.t.Format(time.RFC3339), minTS.Format("2006-01-02"))
	}
	if w.TS.t.After(now.Add(d.MaxFuture)) {
		return r, reject(ReasonBadTimestamp, "ts", "%s is more than %s in the future", w.TS.t.Format(time.RFC3339), d.MaxFuture)
	}
	if d.MaxPast > 0 && w.TS.t.Before(now.Add(-d.MaxPast)) {
		return r, reject(ReasonTooOld, "ts", "%s is more than %s in the past (ingest.max_past; retention would drop it)", w.TS.t.Format(time.RFC3339), d.MaxPast)
	}
	r.TS = w.TS.t

	if len(w.RequestID) > maxRequestID {
		return r, reject(ReasonBadValue, "request_id", "longer than %d bytes", maxRequestID)
	}
	r.RequestID = m.Mask(w.RequestID)

	if len(w.Method) > maxMethod || !isToken(w.Method) {
		return r, reject(ReasonBadValue, "method", "not an HTTP method")
	}
	r.Method = strings.ToUpper(w.Method)

	path := w.Path
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return r, reject(ReasonBadValue, "path", "empty once the query string is removed")
	}
	r.Path = maskText(m, path, maxPath)
	r.Route = Route(r.Path)

	if w.Status < 100 || w.Status > 599 {
		return r, reject(ReasonBadValue, "status", "%d is not an HTTP status", w.Status)
	}
	r.Status = uint16(w.Status)
	r.ErrorCode = maskText(m, w.ErrorCode, maxErrorCode)

	ip, err := parseIP(w.ClientIP)
	if err != nil {
		return r, reject(ReasonBadValue, "client_ip", "not an IP address")
	}
	r.ClientIP = canonical(ip, w.ClientIP)
	r.ClientNet = network(ip)

	if len(w.KeyID) > maxID || len(w.AccountID) > maxID || len(w.OAuthClientID) > maxID {
		return r, reject(ReasonBadValue, longest(w), "longer than %d bytes", maxID)
	}
	keyID, keyIDCred := identifier(m, w.KeyID)
	oauth, oauthCred := identifier(m, w.OAuthClientID)
	account, accountCred := identifier(m, w.AccountID)
	presented := w.APIKey
	if presented == "" {
		presented = cmp.Or(keyIDCred, oauthCred, accountCred)
	}
	fp := d.fingerprinter()
	r.KeyFP = fp.Fingerprint(presented)
	r.KeyHint = secret.Hint(presented)
	switch {
	case keyIDCred == presented && keyIDCred != "":
		r.KeyID, r.KeySource = r.KeyFP, "fingerprint"
	case keyIDCred != "":
		r.KeyID, r.KeySource = fp.Fingerprint(keyIDCred), "fingerprint"
	case keyID != "":
		r.KeyID, r.KeySource = keyID, "registry"
	case r.KeyFP != "":
		r.KeyID, r.KeySource = r.KeyFP, "fingerprint"
	}
	if oauthCred != "" {
		oauth = secret.Hint(oauthCred)
	}
	if accountCred != "" {
		account = secret.Hint(accountCred)
	}

	switch env := strings.ToLower(w.Env); env {
	case "live", "test":
		r.Env = env
	case "":
		r.Env = secret.Env(presented)
	default:
		return r, reject(ReasonBadValue, "env", "want live or test")
	}

	switch am := strings.ToLower(w.AuthMethod); am {
	case "api_key", "oauth", "none":
		r.AuthMethod = am
	case "":
		switch {
		case w.APIKey != "" || w.KeyID != "":
			r.AuthMethod = "api_key"
		case w.OAuthClientID != "":
			r.AuthMethod = "oauth"
		default:
			r.AuthMethod = "none"
		}
	default:
		return r, reject(ReasonBadValue, "auth_method", "want api_key, oauth or none")
	}
	r.OAuthClientID = oauth
	r.AccountID = account

	r.Signed = w.Signed
	if w.SignatureTS != absent {
		if w.SignatureTS < 0 || w.SignatureTS > math.MaxUint32 {
			return r, reject(ReasonBadValue, "signature_ts", "not unix seconds")
		}
		sts := uint32(w.SignatureTS)
		off := clampInt32(w.SignatureTS - r.TS.Unix())
		r.SignatureTS, r.ClockOffsetS = &sts, &off
	}

	r.UserAgent = maskText(m, w.UserAgent, maxUserAgent)
	r.Origin = maskText(m, w.Origin, maxOrigin)
	if w.LatencyMS < 0 || math.IsNaN(w.LatencyMS) || w.LatencyMS > math.MaxFloat32 {
		return r, reject(ReasonBadValue, "latency_ms", "negative or out of range")
	}
	r.LatencyMS = float32(w.LatencyMS)
	r.BytesIn, r.BytesOut = w.BytesIn, w.BytesOut
	return r, nil
}

// identifier returns an identifier field as stored: masked (a key inside
// becomes its hint) — or, when the whole value is a credential, "" and the
// credential, for the caller to fingerprint and hint.
func identifier(m secret.Masker, v string) (masked, credential string) {
	if c, ok := secret.Credential(v); ok {
		return "", c
	}
	return m.Mask(v), ""
}

// maskKeySlack is how much more than its limit of a free-text field is
// masked before the field is cut: enough that a key crossing the limit is
// still recognised as one (and masked) rather than cut into a fragment the
// masker no longer matches.
const maskKeySlack = 256

// maskText masks the key-like strings of s and cuts it to n bytes. Masking
// reads at most n+maskKeySlack bytes, so a hostile message cannot make the
// regular expressions scan a megabyte per field.
func maskText(m secret.Masker, s string, n int) string {
	return truncate(m.Mask(truncate(s, n+maskKeySlack)), n)
}

func longest(w *wire) string {
	switch {
	case len(w.KeyID) > maxID:
		return "key_id"
	case len(w.AccountID) > maxID:
		return "account_id"
	}
	return "oauth_client_id"
}

// parseIP accepts an address, optionally with a port or brackets, and returns
// it with IPv4-mapped IPv6 unmapped and any zone removed.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, err
		}
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone(""), nil
}

// canonical returns ip's text form: given, the string it was parsed from
// when that is already canonical (the usual case), without allocating.
func canonical(ip netip.Addr, given string) string {
	var buf [64]byte
	if b := ip.AppendTo(buf[:0]); string(b) == given {
		return given
	}
	return ip.String()
}

// network returns the /24 (IPv4) or /48 (IPv6) network of ip.
func network(ip netip.Addr) string {
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	var buf [64]byte
	return string(p.AppendTo(buf[:0]))
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func clampInt32(v int64) int32 {
	switch {
	case v > math.MaxInt32:
		return math.MaxInt32
	case v < math.MinInt32:
		return math.MinInt32
	}
	return int32(v)
}
