package event

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"sync"
	"unsafe"

	"github.com/go-faster/jx"
)

// field is a member of the event's JSON object that the decoder reads.
type field uint8

const (
	fNone field = iota
	fTS
	fRequestID
	fMethod
	fPath
	fStatus
	fErrorCode
	fClientIP
	fAPIKey
	fKeyID
	fAuthMethod
	fOAuthClientID
	fEnv
	fSigned
	fSignatureTS
	fUserAgent
	fOrigin
	fLatencyMS
	fBytesIn
	fBytesOut
	fAccountID
)

// fieldNames are the JSON names, indexed by field.
var fieldNames = [...]string{"", "ts", "request_id", "method", "path", "status", "error_code", "client_ip", "api_key",
	"key_id", "auth_method", "oauth_client_id", "env", "signed", "signature_ts", "user_agent", "origin", "latency_ms",
	"bytes_in", "bytes_out", "account_id"}

// fieldOf returns the field a member name stands for. As in encoding/json,
// a name that matches no field exactly matches one case-insensitively.
func fieldOf(k []byte) field {
	switch string(k) {
	case "ts":
		return fTS
	case "request_id":
		return fRequestID
	case "method":
		return fMethod
	case "path":
		return fPath
	case "status":
		return fStatus
	case "error_code":
		return fErrorCode
	case "client_ip":
		return fClientIP
	case "api_key":
		return fAPIKey
	case "key_id":
		return fKeyID
	case "auth_method":
		return fAuthMethod
	case "oauth_client_id":
		return fOAuthClientID
	case "env":
		return fEnv
	case "signed":
		return fSigned
	case "signature_ts":
		return fSignatureTS
	case "user_agent":
		return fUserAgent
	case "origin":
		return fOrigin
	case "latency_ms":
		return fLatencyMS
	case "bytes_in":
		return fBytesIn
	case "bytes_out":
		return fBytesOut
	case "account_id":
		return fAccountID
	}
	for f, name := range fieldNames[1:] {
		if bytes.EqualFold(k, []byte(name)) {
			return field(f + 1)
		}
	}
	return fNone
}

// Scratch is the memory one goroutine reuses to decode messages one after
// another (a JSON decoder). Rows that DecodeBorrowed returns borrow it and
// the message.
type Scratch struct {
	d jx.Decoder
}

var scratches = sync.Pool{New: func() any { return new(Scratch) }}

// parseWire reads the event's members from b, a JSON object, in one pass
// into a wire whose strings borrow b (or s's memory). A message that is not
// valid JSON is not_json; otherwise the first member of a known field with
// the wrong JSON type is wrong_type; null leaves a field unset; unknown
// members are ignored; of a repeated member the last counts — as
// encoding/json decodes it.
func parseWire(s *Scratch, b []byte) (wire, error) {
	w := wire{Status: absent, SignatureTS: absent}
	d := &s.d
	d.ResetBytes(b)
	var first *Error
	err := d.ObjBytes(func(d *jx.Decoder, k []byte) error {
		f := fieldOf(k)
		if f == fNone || first != nil {
			return d.Skip()
		}
		e, err := w.set(f, d, b)
		if first == nil {
			first = e
		}
		return err
	})
	if err == nil {
		if err = d.Skip(); errors.Is(err, io.EOF) {
			err = nil
		} else if err == nil {
			err = errors.New("data after the object")
		}
	}
	if err != nil {
		return w, reject(ReasonNotJSON, "", "%s", err.Error())
	}
	if first != nil {
		return w, first
	}
	return w, nil
}

// set sets field f of w from the value d is at, consuming it: a JSON error
// (the message is not JSON), or else an *Error for a value of the wrong type.
func (w *wire) set(f field, d *jx.Decoder, in []byte) (*Error, error) {
	t := d.Next()
	if t == jx.Null {
		return nil, d.Null()
	}
	name := fieldNames[f]
	wrong := func(want string) (*Error, error) {
		return reject(ReasonWrongType, name, "got JSON %s, want %s", jsonType(t), want), d.Skip()
	}
	switch f {
	case fTS:
		switch t {
		case jx.String:
			v, err := d.StrBytes()
			if err != nil {
				return nil, err
			}
			// setString keeps nothing of its argument: no copy needed.
			return w.TS.setString(unsafe.String(unsafe.SliceData(v), len(v))), nil
		case jx.Number:
			n, err := d.Num()
			if err != nil {
				return nil, err
			}
			ms, err := n.Float64()
			if err != nil {
				return reject(ReasonWrongType, "ts", "got number %s, want epoch milliseconds", n.String()), nil
			}
			return w.TS.setMillis(ms), nil
		}
		return reject(ReasonWrongType, "ts", "got JSON %s, want an RFC 3339 string or epoch milliseconds", jsonType(t)), d.Skip()
	case fStatus, fSignatureTS, fBytesIn, fBytesOut, fLatencyMS:
		if t != jx.Number {
			if f == fLatencyMS {
				return wrong("number")
			}
			return wrong("integer")
		}
		n, err := d.Num()
		if err != nil {
			return nil, err
		}
		return w.setNumber(f, n), nil
	case fSigned:
		if t != jx.Bool {
			return wrong("boolean")
		}
		v, err := d.Bool()
		w.Signed = v
		return nil, err
	}
	if t != jx.String {
		return wrong("string")
	}
	v, err := d.StrBytes()
	if err != nil {
		return nil, err
	}
	*w.strField(f) = borrow(v, in)
	return nil, nil
}

// setNumber sets numeric field f from n, or says why n does not fit it.
// Integers are refused in any other form (200.0, 2e2), as encoding/json does.
func (w *wire) setNumber(f field, n jx.Num) *Error {
	text := unsafe.String(unsafe.SliceData(n), len(n))
	var err error
	switch f {
	case fStatus:
		w.Status, err = strconv.ParseInt(text, 10, 64)
	case fSignatureTS:
		w.SignatureTS, err = strconv.ParseInt(text, 10, 64)
	case fBytesIn:
		w.BytesIn, err = strconv.ParseUint(text, 10, 64)
	case fBytesOut:
		w.BytesOut, err = strconv.ParseUint(text, 10, 64)
	case fLatencyMS:
		w.LatencyMS, err = strconv.ParseFloat(text, 64)
	}
	if err != nil {
		want := "integer"
		if f == fLatencyMS {
			want = "number"
		}
		return reject(ReasonWrongType, fieldNames[f], "got JSON number %s, want %s", text, want)
	}
	return nil
}

// strField returns the string of w that f names.
func (w *wire) strField(f field) *string {
	switch f {
	case fRequestID:
		return &w.RequestID
	case fMethod:
		return &w.Method
	case fPath:
		return &w.Path
	case fErrorCode:
		return &w.ErrorCode
	case fClientIP:
		return &w.ClientIP
	case fAPIKey:
		return &w.APIKey
	case fKeyID:
		return &w.KeyID
	case fAuthMethod:
		return &w.AuthMethod
	case fOAuthClientID:
		return &w.OAuthClientID
	case fEnv:
		return &w.Env
	case fUserAgent:
		return &w.UserAgent
	case fOrigin:
		return &w.Origin
	case fAccountID:
		return &w.AccountID
	}
	panic("event: not a string field: " + fieldNames[f])
}

// borrow returns v as a string without copying when v lies in the message
// in (a string without escapes), else as a copy (v is then the decoder's
// buffer, which the next string overwrites).
func borrow(v, in []byte) string {
	if len(v) == 0 {
		return ""
	}
	p, lo := uintptr(unsafe.Pointer(&v[0])), uintptr(unsafe.Pointer(&in[0]))
	if p >= lo && p+uintptr(len(v)) <= lo+uintptr(len(in)) {
		return unsafe.String(&v[0], len(v))
	}
	return string(v)
}

// jsonType names a JSON type as encoding/json's errors do.
func jsonType(t jx.Type) string {
	switch t {
	case jx.Bool:
		return "bool"
	case jx.Object:
		return "object"
	case jx.Array:
		return "array"
	case jx.Number:
		return "number"
	case jx.String:
		return "string"
	}
	return "value"
}
