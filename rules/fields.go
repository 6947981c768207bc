package rules

// Kind is the type of an event field.
type Kind int

// Field kinds.
const (
	String Kind = iota
	Number
	Bool
)

// Field is an event field rules may filter on, group by or count. Expr is its
// ClickHouse expression over access_log; it comes from this fixed list only,
// never from a rule file.
type Field struct {
	Name string
	Kind Kind
	Expr string
	Doc  string
}

// Fields lists every field a rule may name.
var Fields = []Field{
	{"method", String, "method", "HTTP method, upper case"},
	{"path", String, "path", "request path without query string"},
	{"status", Number, "status", "HTTP status"},
	{"error_code", String, "error_code", "gateway error code, empty on success"},
	{"client_ip", String, "client_ip", "caller IP"},
	{"client_net", String, "client_net", "caller /24 (IPv4) or /48 (IPv6)"},
	{"key_id", String, "key_id", "key identity: registry id, else fingerprint"},
	{"key_fingerprint", String, "key_fingerprint", "fingerprint of the key as presented"},
	{"env", String, "env", "live or test"},
	{"auth_method", String, "auth_method", "api_key, oauth or none"},
	{"oauth_client_id", String, "oauth_client_id", "OAuth client"},
	{"account_id", String, "account_id", "account owning the key"},
	{"user_agent", String, "user_agent", "User-Agent header"},
	{"origin", String, "origin", "Origin header"},
	{"signed", Bool, "signed", "request carried X-Brokeret-Signature"},
	{"latency_ms", Number, "latency_ms", "gateway latency"},
	{"bytes_in", Number, "bytes_in", "request body bytes"},
	{"bytes_out", Number, "bytes_out", "response body bytes"},
	{"clock_offset_s", Number, "ifNull(clock_offset_s, 0)", "X-Brokeret-Timestamp minus ts, seconds (0 when unsigned)"},
	{"clock_skew_s", Number, "abs(ifNull(clock_offset_s, 0))", "absolute clock offset, seconds"},
	{"auth_failure", Bool, "(status = 401 OR status = 403)", "the request was rejected for authentication"},
	{"browser", Bool, "(origin != '' OR startsWith(user_agent, 'Mozilla/'))", "sent by a browser (Origin header or browser user agent)"},
	{"has_key", Bool, "(key_id != '')", "a key was presented (or named by the gateway)"},
}

// LookupField returns the field called name.
func LookupField(name string) (Field, bool) {
	for _, f := range Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

func fieldNames() []string {
	out := make([]string, len(Fields))
	for i, f := range Fields {
		out[i] = f.Name
	}
	return out
}
