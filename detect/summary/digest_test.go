package summary

import (
	"strings"
	"testing"
)

// TestDigestSignals checks the digest's "Signals (not alerted)" section and
// that a key flagged only for its signals is listed there, not under
// "Needs attention".
func TestDigestSignals(t *testing.T) {
	onlySignals := sampleRenderReport(t)
	onlySignals.Keys[5].Signals = []SignalRef{{RuleID: "stale-key", Count: 1, Severity: "low", Summary: "unused for 50 days"}}
	onlySignals.Keys[5].Flags = []string{FlagSignals}
	onlySignals.Totals.Signals["stale-key"]++
	onlySignals.Totals.SignalKeys++
	none := sampleRenderReport(t)
	none.Totals.Signals = nil
	for i := range none.Keys {
		none.Keys[i].Signals = nil
	}

	tests := []struct {
		name   string
		r      *Report
		limit  int
		want   []string
		absent []string
	}{
		{"sample", sampleRenderReport(t), 5, []string{
			"\n*Signals (not alerted)* — 7 in the period, on 2 listed keys\n• ip-allowlist-rejected — 4\n• clock-skew — 2\n• auth-failure-burst-low — 1\nTop keys:\n",
			"• bk_live_a1b2…o5p6 (Desk <script>alert(1)</script> | Ops) — 3 signals (ip-allowlist-rejected 3)\n",
			"• bk_live_c3d4…q7r8 (Quant team) — 3 signals (clock-skew 2, ip-allowlist-rejected 1)\n",
		}, nil},
		{"limit", sampleRenderReport(t), 1, []string{"• ip-allowlist-rejected — 4\n• … and 2 more rules in the attached report\n", "• … and 1 more keys\n"}, []string{"clock-skew — 2"}},
		{"signals only: not under Needs attention", onlySignals, 10, []string{"• bk_test_ZZZZ…2222 (Integration tests) — 1 signal (stale-key 1)\n"},
			[]string{"bk_test_ZZZZ…2222 (Integration tests) — signals"}},
		{"no signals, no section", none, 5, nil, []string{"Signals"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Digest(tt.r, tt.limit)
			for _, w := range tt.want {
				if !strings.Contains(d, w) {
					t.Errorf("digest lacks %q:\n%s", w, d)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(d, a) {
					t.Errorf("digest contains %q:\n%s", a, d)
				}
			}
			if m := fullKeyRe.FindString(d); m != "" {
				t.Errorf("digest contains a full key: %q", m)
			}
		})
	}
}
