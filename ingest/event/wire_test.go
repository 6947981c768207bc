package event

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// oracleWire is the event decoded the reflective way (goccy/go-json, as
// auditwatch did before parseWire): parseWire must agree with it.
type oracleWire struct {
	TS            oracleTS `json:"ts"`
	RequestID     string   `json:"request_id"`
	Method        string   `json:"method"`
	Path          string   `json:"path"`
	Status        int64    `json:"status"`
	ErrorCode     string   `json:"error_code"`
	ClientIP      string   `json:"client_ip"`
	APIKey        string   `json:"api_key"`
	KeyID         string   `json:"key_id"`
	AuthMethod    string   `json:"auth_method"`
	OAuthClientID string   `json:"oauth_client_id"`
	Env           string   `json:"env"`
	Signed        bool     `json:"signed"`
	SignatureTS   int64    `json:"signature_ts"`
	UserAgent     string   `json:"user_agent"`
	Origin        string   `json:"origin"`
	LatencyMS     float64  `json:"latency_ms"`
	BytesIn       uint64   `json:"bytes_in"`
	BytesOut      uint64   `json:"bytes_out"`
	AccountID     string   `json:"account_id"`
}

type oracleTS struct{ tsField }

func (f *oracleTS) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return reject(ReasonWrongType, "ts", "not a JSON string")
		}
		if e := f.setString(s); e != nil {
			return e
		}
		return nil
	}
	ms, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return reject(ReasonWrongType, "ts", "not a number")
	}
	if e := f.setMillis(ms); e != nil {
		return e
	}
	return nil
}

func oracleParse(b []byte) (wire, error) {
	o := oracleWire{Status: absent, SignatureTS: absent}
	if err := json.Unmarshal(b, &o); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			f := te.Field
			if i := strings.LastIndexByte(f, '.'); i >= 0 {
				f = f[i+1:]
			}
			return wire{}, reject(ReasonWrongType, f, "%s", te.Value)
		}
		var fe *Error
		if errors.As(err, &fe) {
			return wire{}, fe
		}
		return wire{}, reject(ReasonNotJSON, "", "%s", err.Error())
	}
	return wire{TS: o.TS.tsField, RequestID: o.RequestID, Method: o.Method, Path: o.Path, Status: o.Status,
		ErrorCode: o.ErrorCode, ClientIP: o.ClientIP, APIKey: o.APIKey, KeyID: o.KeyID, AuthMethod: o.AuthMethod,
		OAuthClientID: o.OAuthClientID, Env: o.Env, Signed: o.Signed, SignatureTS: o.SignatureTS, UserAgent: o.UserAgent,
		Origin: o.Origin, LatencyMS: o.LatencyMS, BytesIn: o.BytesIn, BytesOut: o.BytesOut, AccountID: o.AccountID}, nil
}

// compareWithOracle fails when parseWire and the reflective decoder
// disagree on b: on whether it is usable, on the reason and field of a
// single problem, or on any value.
func compareWithOracle(t *testing.T, b []byte) {
	t.Helper()
	b = bytes.TrimSpace(b)
	if !utf8.Valid(b) || len(b) == 0 || b[0] != '{' {
		return // Decode rejects these before parsing
	}
	got, gerr := parseWire(new(Scratch), b)
	want, werr := oracleParse(b)
	switch {
	case gerr == nil && werr == nil:
		if got != want {
			t.Errorf("%q:\n got %+v\nwant %+v", b, got, want)
		}
	case gerr != nil && werr != nil:
		g, w := gerr.(*Error), werr.(*Error)
		// Of two problems, parseWire names the first in the message, the
		// reflective decoder may name another; the class must agree when
		// the message is not JSON at all.
		if (g.Reason == ReasonNotJSON) != (w.Reason == ReasonNotJSON) {
			t.Errorf("%q: got %v, want %v", b, gerr, werr)
		}
	default:
		t.Errorf("%q: got error %v, want %v", b, gerr, werr)
	}
}

func TestWireAgreesWithReflectiveDecoder(t *testing.T) {
	for _, b := range []string{
		good,
		`{"ts":1795780800123,"request_id":"r","method":"GET","path":"/","status":200,"client_ip":"::1"}`,
		`{"Status":200,"STATUS":201,"status":null}`,
		`{"status":200.5}`, `{"status":"200"}`, `{"status":1e3}`, `{"status":-0}`, `{"status":9223372036854775808}`,
		`{"bytes_in":-1}`, `{"bytes_out":18446744073709551615}`, `{"latency_ms":1e400}`, `{"latency_ms":"1"}`,
		`{"signed":"true"}`, `{"signed":1}`, `{"signed":true,"signed":false}`,
		`{"ts":null}`, `{"ts":true}`, `{"ts":{}}`, `{"ts":"2026-11-27T10:00:00Z"}`, `{"ts":"garbage"}`, `{"ts":1e20}`,
		`{"user_agent":"a\u0062\n\"\\\/\ud83d\ude00\ud800x"}`, `{"path":"\x"}`, `{"path":"a` + "\t" + `b"}`,
		`{"extra":{"deep":[1,2,{"x":null}]},"method":"GET"}`, `{"method":["GET"]}`, `{"method":{}}`,
		`{"a":1,}`, `{"a":1}x`, `{"a":1} `, `{"a":01}`, `{"status":200,"status":"x"}`, `{"request_id":"\u0000"}`,
	} {
		compareWithOracle(t, []byte(b))
	}
}

func FuzzWireAgreesWithReflectiveDecoder(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"ts":"2026-11-27T10:00:00","status":200.0,"signed":null,"x":[{"y":"\u00e9"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { compareWithOracle(t, b) })
}
