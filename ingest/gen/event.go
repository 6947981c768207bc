package gen

import "time"

// Auth methods of an Event.
const (
	AuthAPIKey = "api_key"
	AuthOAuth  = "oauth"
	AuthNone   = "none"
)

// Environments of a key and an Event.
const (
	EnvLive = "live"
	EnvTest = "test"
)

// Gateway error codes.
const (
	CodeInvalidAPIKey    = "invalid_api_key"
	CodeExpiredAPIKey    = "expired_api_key"
	CodeInvalidSignature = "invalid_signature"
	CodeIPNotWhitelisted = "ip_not_whitelisted"
	CodeRateLimited      = "rate_limited"
	CodeBadRequest       = "bad_request"
	CodeNotFound         = "not_found"
	CodeInternalError    = "internal_error"
)

// Event is one gateway access-log record, the JSON object carried by one
// Kafka message. Optional fields are omitted from the JSON when empty.
type Event struct {
	// TS is when the gateway received the request, with millisecond precision.
	TS time.Time `json:"ts"`
	// RequestID is unique within one Run.
	RequestID string `json:"request_id"`
	Method    string `json:"method"`
	// Path includes the query string, if any.
	Path   string `json:"path"`
	Status int    `json:"status"`
	// ErrorCode is empty on success.
	ErrorCode string `json:"error_code,omitempty"`
	// ClientIP is an IPv4 or IPv6 address.
	ClientIP string `json:"client_ip"`
	// APIKey is the full key as presented; empty for OAuth and unauthenticated requests.
	APIKey string `json:"api_key,omitempty"`
	// KeyID is the registry id when the gateway recognised the key.
	KeyID string `json:"key_id,omitempty"`
	// AuthMethod is AuthAPIKey, AuthOAuth or AuthNone.
	AuthMethod    string `json:"auth_method"`
	OAuthClientID string `json:"oauth_client_id,omitempty"`
	// Env is EnvLive or EnvTest; sometimes omitted so the ingester derives it from the key prefix.
	Env    string `json:"env,omitempty"`
	Signed bool   `json:"signed"`
	// SignatureTS is the X-Brokeret-Timestamp header (unix seconds) of signed requests.
	SignatureTS int64  `json:"signature_ts,omitempty"`
	UserAgent   string `json:"user_agent,omitempty"`
	// Origin is set only for requests made from a browser.
	Origin    string  `json:"origin,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
	BytesIn   int     `json:"bytes_in"`
	BytesOut  int     `json:"bytes_out"`
	AccountID string  `json:"account_id,omitempty"`
}
