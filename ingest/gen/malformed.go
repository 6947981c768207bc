package gen

import (
	"bytes"
	"net/http"
	"strconv"
	"time"
)

// Rejection classes of MalformedCase.Reason; they match the reasons of the
// ingest decoder.
const (
	ReasonTooLarge     = "too_large"
	ReasonInvalidUTF8  = "invalid_utf8"
	ReasonNotJSON      = "not_json"
	ReasonWrongType    = "wrong_type"
	ReasonMissingField = "missing_field"
	ReasonBadValue     = "bad_value"
	ReasonBadTimestamp = "bad_timestamp"
)

// MalformedCase is a deliberately broken Kafka message for ingest tests.
type MalformedCase struct {
	// Name identifies the case in test output.
	Name string
	// Reason is the rejection class an ingester should report.
	Reason string
	// Field is the offending field, if the fault is in one.
	Field string
	// Why says what is wrong with the message.
	Why string
	// Secret is a full API key contained in Data, if any. It must not appear
	// in logs, metrics labels or error messages.
	Secret string
	Data   []byte
}

// MalformedLines returns the Data of MalformedCases(seed).
func MalformedLines(seed int64) [][]byte {
	cases := MalformedCases(seed)
	out := make([][]byte, len(cases))
	for i, c := range cases {
		out[i] = c.Data
	}
	return out
}

// MalformedCases returns broken messages, each derived from a valid event
// timestamped 2026-11-27T10:00:00Z and carrying a seeded live key. The
// timestamp cases assume an ingest clock near that date and at most a day
// of tolerated future skew. Every Data is a fresh slice.
func MalformedCases(seed int64) []MalformedCase {
	r := newRNG(seed, streamMangled)
	key := newSecret(r, EnvLive)
	ev := Event{
		TS: time.Date(2026, 11, 27, 10, 0, 0, 250e6, time.UTC), RequestID: "req_" + randAlnum(r, 20),
		Method: http.MethodPost, Path: "/v1/orders", Status: http.StatusUnauthorized, ErrorCode: CodeInvalidSignature,
		ClientIP: "52.14.203.37", APIKey: key, KeyID: "key_01KAEJYWV00FRGTQ1CNB207HJQ", AuthMethod: AuthAPIKey,
		Env: EnvLive, Signed: true, SignatureTS: 1795780799, UserAgent: "brokeret-python/2.3.1",
		LatencyMS: 1.42, BytesIn: 212, BytesOut: 96, AccountID: "acc_" + randAlnum(r, 12),
	}
	valid := ev.AppendJSON(nil)
	// edit replaces the first occurrence of old in a copy of the valid event.
	edit := func(old, repl string) []byte {
		if !bytes.Contains(valid, []byte(old)) {
			panic("malformed: fragment not in base event: " + old)
		}
		return bytes.Replace(bytes.Clone(valid), []byte(old), []byte(repl), 1)
	}
	ts := `"ts":"2026-11-27T10:00:00.250Z"`
	rid := `"request_id":"` + ev.RequestID + `",`
	big := bytes.Repeat([]byte("A"), 2<<20)

	return []MalformedCase{
		{Name: "plain_text", Reason: ReasonNotJSON, Why: "an access-log line in text format, not JSON",
			Data: []byte(`52.14.203.37 - - [27/Nov/2026:10:00:00 +0000] "POST /v1/orders HTTP/1.1" 401 96`)},
		{Name: "empty", Reason: ReasonNotJSON, Why: "an empty message", Data: []byte{}},
		{Name: "truncated", Reason: ReasonNotJSON, Why: "a valid event cut off half way",
			Data: bytes.Clone(valid[:len(valid)/2])},
		{Name: "array", Reason: ReasonNotJSON, Why: "a JSON array of events instead of one object",
			Data: append(append([]byte{'['}, valid...), ']')},
		{Name: "raw_control_char", Reason: ReasonNotJSON, Field: "user_agent", Why: "an unescaped NUL and newline inside a string",
			Data: edit(`brokeret-python/2.3.1`, "brokeret-python\x00/2.3.1\n")},
		{Name: "secret_in_garbage", Reason: ReasonNotJSON, Secret: key,
			Why:  "control bytes and garbage around a full live key; the error must not echo it",
			Data: []byte("\x1f\x02 garbage api_key=" + key + " }}{{ not json")},
		{Name: "status_string", Reason: ReasonWrongType, Field: "status", Why: "status as a string",
			Data: edit(`"status":401`, `"status":"401"`)},
		{Name: "ts_bool", Reason: ReasonWrongType, Field: "ts", Why: "ts as a boolean",
			Data: edit(ts, `"ts":true`)},
		{Name: "signed_string", Reason: ReasonWrongType, Field: "signed", Why: "signed as a string",
			Data: edit(`"signed":true`, `"signed":"yes"`)},
		{Name: "secret_in_wrong_type", Reason: ReasonWrongType, Field: "bytes_in", Secret: key,
			Why:  "a full key where a number belongs; the error must not quote it",
			Data: edit(`"bytes_in":212`, `"bytes_in":"`+key+`"`)},
		{Name: "missing_ts", Reason: ReasonMissingField, Field: "ts", Why: "no ts",
			Data: edit(ts+",", "")},
		{Name: "missing_request_id", Reason: ReasonMissingField, Field: "request_id", Why: "no request_id",
			Data: edit(rid, "")},
		{Name: "missing_client_ip", Reason: ReasonMissingField, Field: "client_ip", Why: "no client_ip",
			Data: edit(`"client_ip":"52.14.203.37",`, "")},
		{Name: "invalid_utf8", Reason: ReasonInvalidUTF8, Field: "user_agent", Why: "bytes 0xff 0xfe inside user_agent",
			Data: edit(`brokeret-python/2.3.1`, "brokeret-\xff\xfe-python")},
		{Name: "ts_far_future", Reason: ReasonBadTimestamp, Field: "ts", Why: "timestamp in the year 9999",
			Data: edit(ts, `"ts":"9999-12-31T23:59:59.999Z"`)},
		{Name: "ts_epoch_zero", Reason: ReasonBadTimestamp, Field: "ts", Why: "timestamp at the Unix epoch",
			Data: edit(ts, `"ts":"1970-01-01T00:00:00.000Z"`)},
		{Name: "ts_seconds_as_ms", Reason: ReasonBadTimestamp, Field: "ts", Why: "epoch seconds where epoch milliseconds are expected (January 1970)",
			Data: edit(ts, `"ts":`+strconv.FormatInt(ev.TS.Unix(), 10))},
		{Name: "ts_unparseable", Reason: ReasonBadTimestamp, Field: "ts", Why: "a day-first local date, not RFC 3339",
			Data: edit(ts, `"ts":"27/11/2026 10:00"`)},
		{Name: "bad_client_ip", Reason: ReasonBadValue, Field: "client_ip", Why: "client_ip with an octet above 255",
			Data: edit(`"client_ip":"52.14.203.37"`, `"client_ip":"999.14.203.37"`)},
		{Name: "status_out_of_range", Reason: ReasonBadValue, Field: "status", Why: "status 999",
			Data: edit(`"status":401`, `"status":999`)},
		{Name: "negative_latency", Reason: ReasonBadValue, Field: "latency_ms", Why: "negative latency",
			Data: edit(`"latency_ms":1.42`, `"latency_ms":-3.5`)},
		{Name: "oversized", Reason: ReasonTooLarge, Field: "user_agent", Why: "a valid event padded to over 2 MiB by its user_agent",
			Data: edit(`brokeret-python/2.3.1`, string(big))},
	}
}
