package event

import (
	"bytes"
	"errors"
	"math"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"

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
	// FingerprintKey, when set, makes fingerprints keyed (HMAC).
	FingerprintKey []byte
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

// wire is the JSON shape of an event. Sentinels mark absent numbers so that
// decoding allocates nothing beyond the strings.
type wire struct {
	TS            tsField `json:"ts"`
	RequestID     string  `json:"request_id"`
	Method        string  `json:"method"`
	Path          string  `json:"path"`
	Status        int64   `json:"status"`
	ErrorCode     string  `json:"error_code"`
	ClientIP      string  `json:"client_ip"`
	APIKey        string  `json:"api_key"`
	KeyID         string  `json:"key_id"`
	AuthMethod    string  `json:"auth_method"`
	OAuthClientID string  `json:"oauth_client_id"`
	Env           string  `json:"env"`
	Signed        bool    `json:"signed"`
	SignatureTS   int64   `json:"signature_ts"`
	UserAgent     string  `json:"user_agent"`
	Origin        string  `json:"origin"`
	LatencyMS     float64 `json:"latency_ms"`
	BytesIn       uint64  `json:"bytes_in"`
	BytesOut      uint64  `json:"bytes_out"`
	AccountID     string  `json:"account_id"`
}

const absent = math.MinInt64

// Decode parses one message value into a Row. now is the ingest time, used
// to reject timestamps in the far future. A rejected message yields an
// *Error whose message never contains an API key.
func (d *Decoder) Decode(raw []byte, now time.Time) (Row, error) {
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
	w := wire{Status: absent, SignatureTS: absent}
	if err := json.UnmarshalNoEscape(trimmed, &w); err != nil {
		return Row{}, jsonError(err)
	}
	return w.row(now, d.MaxFuture)
}

// jsonError classifies a decoding error, scrubbing anything key-like it quotes.
func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if i := strings.LastIndexByte(field, '.'); i >= 0 {
			field = field[i+1:]
		}
		return reject(ReasonWrongType, field, "got JSON %s, want %s", te.Value, jsonKind(te.Type.Kind().String()))
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return reject(ReasonNotJSON, "", "%s", err.Error())
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "float32", "float64":
		return "number"
	case "struct":
		return "string or number"
	}
	return "integer"
}

func (w *wire) row(now time.Time, maxFuture time.Duration) (Row, error) {
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
	if w.TS.t.After(now.Add(maxFuture)) {
		return r, reject(ReasonBadTimestamp, "ts", "%s is more than %s in the future", w.TS.t.Format(time.RFC3339), maxFuture)
	}
	r.TS = w.TS.t

	if len(w.RequestID) > maxRequestID {
		return r, reject(ReasonBadValue, "request_id", "longer than %d bytes", maxRequestID)
	}
	r.RequestID = w.RequestID

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
	r.Path = truncate(path, maxPath)
	r.Route = Route(r.Path)

	if w.Status < 100 || w.Status > 599 {
		return r, reject(ReasonBadValue, "status", "%d is not an HTTP status", w.Status)
	}
	r.Status = uint16(w.Status)
	r.ErrorCode = truncate(w.ErrorCode, maxErrorCode)

	ip, err := parseIP(w.ClientIP)
	if err != nil {
		return r, reject(ReasonBadValue, "client_ip", "not an IP address")
	}
	r.ClientIP = ip.String()
	r.ClientNet = network(ip)

	if len(w.KeyID) > maxID || len(w.AccountID) > maxID || len(w.OAuthClientID) > maxID {
		return r, reject(ReasonBadValue, longest(w), "longer than %d bytes", maxID)
	}
	r.KeyFP = secret.Fingerprint(w.APIKey)
	r.KeyHint = secret.Hint(w.APIKey)
	switch {
	case w.KeyID != "":
		r.KeyID, r.KeySource = w.KeyID, "registry"
	case r.KeyFP != "":
		r.KeyID, r.KeySource = r.KeyFP, "fingerprint"
	}

	switch env := strings.ToLower(w.Env); env {
	case "live", "test":
		r.Env = env
	case "":
		r.Env = secret.Env(w.APIKey)
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
	r.OAuthClientID = w.OAuthClientID
	r.AccountID = w.AccountID

	r.Signed = w.Signed
	if w.SignatureTS != absent {
		if w.SignatureTS < 0 || w.SignatureTS > math.MaxUint32 {
			return r, reject(ReasonBadValue, "signature_ts", "not unix seconds")
		}
		sts := uint32(w.SignatureTS)
		off := clampInt32(w.SignatureTS - r.TS.Unix())
		r.SignatureTS, r.ClockOffsetS = &sts, &off
	}

	r.UserAgent = truncate(w.UserAgent, maxUserAgent)
	r.Origin = truncate(w.Origin, maxOrigin)
	if w.LatencyMS < 0 || math.IsNaN(w.LatencyMS) || w.LatencyMS > math.MaxFloat32 {
		return r, reject(ReasonBadValue, "latency_ms", "negative or out of range")
	}
	r.LatencyMS = float32(w.LatencyMS)
	r.BytesIn, r.BytesOut = w.BytesIn, w.BytesOut
	return r, nil
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

// network returns the /24 (IPv4) or /48 (IPv6) network of ip.
func network(ip netip.Addr) string {
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p.String()
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
