package summary

import (
	"encoding/json"
	"io"
)

// jsonReport is Report as renderJSON writes it. Its fields shadow those of
// the embedded Report (encoding/json prefers the shallower field).
type jsonReport struct {
	*Report
	// Bucket in seconds, as the field's name says (a time.Duration would
	// marshal as nanoseconds).
	Bucket float64   `json:"bucket_seconds"`
	Keys   []jsonKey `json:"keys"`
}

// jsonKey is KeySummary with its float fields as pointers: nil (null) when
// not finite, which encoding/json cannot encode.
type jsonKey struct {
	KeySummary
	Change          *float64 `json:"change"`
	SuccessRate     *float64 `json:"success_rate"`
	P50LatencyMS    *float64 `json:"p50_latency_ms"`
	P95LatencyMS    *float64 `json:"p95_latency_ms"`
	KeyAgeDays      *float64 `json:"key_age_days"`
	RotationDueDays *float64 `json:"rotation_due_days"`
}

// renderJSON writes the report as indented JSON with the fields of Report,
// except that bucket_seconds is in seconds and a float that is not finite
// (Change of a key new in the period is +Inf) is null.
func renderJSON(w io.Writer, r *Report) error {
	out := jsonReport{Report: r, Bucket: r.Bucket.Seconds(), Keys: make([]jsonKey, len(r.Keys))}
	for i, k := range r.Keys {
		out.Keys[i] = jsonKey{KeySummary: k, Change: finitePtr(k.Change), SuccessRate: finitePtr(k.SuccessRate),
			P50LatencyMS: finitePtr(k.P50LatencyMS), P95LatencyMS: finitePtr(k.P95LatencyMS),
			KeyAgeDays: finitePtr(k.KeyAgeDays), RotationDueDays: finitePtr(k.RotationDueDays)}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func finitePtr(v float64) *float64 {
	if !isFinite(v) {
		return nil
	}
	return &v
}
