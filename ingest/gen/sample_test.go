package gen

import "time"

// sampleEvent returns a fully populated event.
func sampleEvent() Event {
	return Event{
		TS: time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC), RequestID: "req_0123456789abcdef0123",
		Method: "POST", Path: "/v1/orders", Status: 401, ErrorCode: CodeInvalidSignature, ClientIP: "52.14.203.37",
		APIKey: "bk_live_Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2", KeyID: "key_01KAEJYWV00FRGTQ1CNB207HJQ", AuthMethod: AuthAPIKey,
		Env: EnvLive, Signed: true, SignatureTS: 1795780800, UserAgent: "brokeret-python/2.3.1",
		LatencyMS: 1.42, BytesIn: 212, BytesOut: 96, AccountID: "acc_jTZE3LhIeLy4",
	}
}
