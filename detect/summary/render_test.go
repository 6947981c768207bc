package summary

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var updateRenderGolden = flag.Bool("update-render", false, "rewrite the render golden files in testdata/")

// renderFullKey is a full live key hidden in free text of the sample report.
const renderFullKey = "bk_live_Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2"

// fullKeyRe matches a key with more of its body than a hint shows.
var fullKeyRe = regexp.MustCompile(`bk_(?:live|test)_[A-Za-z0-9_\-]{5,}`)

// sampleRenderReport returns a 24h report of six keys, in priority order:
//  1. live, flagged: open finding, outside allowlist, rotation overdue,
//     signals; hostile owner and path (<script>, |), a full key in a finding
//     and a signal summary;
//  2. live, an IPv6 address outside the allowlist, high error rate, signals
//     of two rules (markup in a summary), a full key in a path;
//  3. unregistered, without a hint (shown by key id);
//  4. live, new in the period (Change +Inf);
//  5. live, stale: no requests, every bucket zero;
//  6. test env, no flags.
//
// The totals also count a signal about no key (auth-failure-burst-low).
func sampleRenderReport(tb testing.TB) *Report {
	tb.Helper()
	to := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	from := to.Add(-24 * time.Hour)
	tp := func(t time.Time) *time.Time { return &t }
	// series spreads n requests (e of them failed) over 24 hours with a
	// day-time bump.
	series := func(n, e uint64) []Point {
		weights := make([]float64, 24)
		var sum float64
		for h := range weights {
			weights[h] = 1 + math.Max(0, math.Sin(float64(h-6)/12*math.Pi))*3
			sum += weights[h]
		}
		// Cumulative rounding: the points add up to n and e exactly.
		pts := make([]Point, 24)
		var cum float64
		var gotN, gotE uint64
		for h := range pts {
			cum += weights[h]
			cn, ce := uint64(math.Round(float64(n)*cum/sum)), uint64(math.Round(float64(e)*cum/sum))
			pts[h] = Point{T: from.Add(time.Duration(h) * time.Hour), Requests: cn - gotN, Errors: ce - gotE}
			gotN, gotE = cn, ce
		}
		return pts
	}
	keys := []KeySummary{
		{
			KeyID: "kid_desk_01", Hint: "bk_live_a1b2…o5p6", Env: "live", AccountID: "acct-100",
			Owner: "Desk <script>alert(1)</script> | Ops", Status: "active", Registered: true,
			Requests: 12000, PrevRequests: 8000, Change: 0.5, Successes: 11700, SuccessRate: 0.975,
			Errors:      map[string]uint64{"invalid_signature": 230, "ip_not_whitelisted": 62, "rate_limited": 8},
			DistinctIPs: 5, OutsideIPs: []string{"198.51.100.7", "203.0.113.9"}, OutsideRequests: 62,
			TopPaths:     []Count{{"/v1/orders", 9000}, {"/v1/positions?x=<script>|y", 2000}, {"/v1/account", 1000}},
			P50LatencyMS: 12, P95LatencyMS: 340, BytesIn: 1_200_000, BytesOut: 9_800_000,
			FirstSeen: tp(from.Add(5 * time.Minute)), LastSeen: tp(to.Add(-3 * time.Minute)),
			CreatedAt: tp(to.AddDate(0, 0, -400)), LastRotation: tp(to.AddDate(0, 0, -131)),
			KeyAgeDays: 131, RotationDueDays: -41, AllowedCIDRs: []string{"10.0.0.0/8"},
			OpenFindings: []FindingRef{{RuleID: "outside_allowlist_ip", Severity: "high",
				Summary:  "Key " + renderFullKey + " used from 203.0.113.9, outside its allowlist",
				EvalTime: to.Add(-5 * time.Hour)}},
			Signals: []SignalRef{{RuleID: "ip-allowlist-rejected", Count: 3, Severity: "low",
				Summary: "Rejected request with " + renderFullKey + " from 198.51.100.99", Latest: to.Add(-2 * time.Hour)}},
			Flags:    []string{FlagOpenFindings, FlagOutsideAllowlist, FlagRotationOverdue, FlagSignals},
			Priority: 195, Series: series(12000, 300),
		},
		{
			KeyID: "kid_quant_02", Hint: "bk_live_c3d4…q7r8", Env: "live", AccountID: "acct-200", Owner: "Quant team",
			Status: "active", Registered: true, Requests: 900, PrevRequests: 850, Change: 900.0/850 - 1,
			Successes: 700, SuccessRate: 700.0 / 900, Errors: map[string]uint64{"invalid_signature": 150, "ip_not_whitelisted": 50},
			DistinctIPs: 3, OutsideIPs: []string{"2001:db8:85a3::8a2e:370:7334"}, OutsideRequests: 50,
			TopPaths:     []Count{{"/v1/keys/" + renderFullKey, 0}, {"/v1/quotes", 0}},
			P50LatencyMS: 8.5, P95LatencyMS: 95, FirstSeen: tp(from), LastSeen: tp(to.Add(-time.Hour)),
			CreatedAt: tp(to.AddDate(0, 0, -30)), LastRotation: tp(to.AddDate(0, 0, -30)),
			KeyAgeDays: 30, RotationDueDays: 60, AllowedCIDRs: []string{"192.0.2.0/24"},
			Signals: []SignalRef{
				{RuleID: "clock-skew", Count: 2, Severity: "info", Summary: "client clock 420 s ahead", Latest: to.Add(-6 * time.Hour)},
				{RuleID: "ip-allowlist-rejected", Count: 1, Severity: "low", Summary: "one request from 2001:db8::1 rejected <b>|</b>", Latest: to.Add(-9 * time.Hour)},
			},
			Flags: []string{FlagOutsideAllowlist, FlagHighErrorRate, FlagSignals}, Priority: 110, Series: series(900, 200),
		},
		{
			KeyID: "9f1c2e3d4b5a6978", Env: "live", AccountID: "acct-777", Requests: 300, PrevRequests: 250,
			Change: 0.2, Successes: 300, SuccessRate: 1, Errors: map[string]uint64{}, DistinctIPs: 1,
			P50LatencyMS: 20, P95LatencyMS: 45, FirstSeen: tp(from.Add(time.Hour)), LastSeen: tp(to.Add(-2 * time.Hour)),
			Flags: []string{FlagUnregistered}, Priority: 50, Series: series(300, 0),
		},
		{
			KeyID: "kid_feed_04", Hint: "bk_live_e5f6…s9t0", Env: "live", AccountID: "acct-300", Owner: "Market data | feed",
			Status: "active", Registered: true, Requests: 5200, Change: math.Inf(1), Successes: 5199,
			SuccessRate: 5199.0 / 5200, Errors: map[string]uint64{"upstream_timeout": 1}, DistinctIPs: 2,
			TopPaths: []Count{{"/v1/stream", 5200}}, P50LatencyMS: 3, P95LatencyMS: 11,
			FirstSeen: tp(from.Add(9 * time.Hour)), LastSeen: tp(to.Add(-10 * time.Minute)),
			CreatedAt: tp(to.AddDate(0, 0, -1)), LastRotation: tp(to.AddDate(0, 0, -1)),
			KeyAgeDays: 1, RotationDueDays: 89, AllowedCIDRs: []string{"10.1.0.0/16"},
			Flags: []string{FlagUnusualChange}, Priority: 20, Series: series(5200, 1),
		},
		{
			KeyID: "kid_old_05", Hint: "bk_live_g7h8…u1v2", Env: "live", AccountID: "acct-400", Owner: "Legacy reporting",
			Status: "active", Registered: true, Errors: map[string]uint64{}, LastSeen: tp(to.AddDate(0, 0, -70)),
			CreatedAt: tp(to.AddDate(0, 0, -200)), LastRotation: tp(to.AddDate(0, 0, -80)),
			KeyAgeDays: 80, RotationDueDays: 10,
			Flags: []string{FlagNoAllowlist, FlagStale}, Priority: 50, Series: series(0, 0),
		},
		{
			KeyID: "kid_sandbox_06", Hint: "bk_test_ZZZZ…2222", Env: "test", AccountID: "acct-500", Owner: "Integration tests",
			Status: "active", Registered: true, Requests: 40000, PrevRequests: 41000, Change: 40000.0/41000 - 1,
			Successes: 39990, SuccessRate: 39990.0 / 40000, Errors: map[string]uint64{"validation_failed": 10},
			DistinctIPs: 12, TopPaths: []Count{{"/v1/orders", 30000}}, P50LatencyMS: 6, P95LatencyMS: 22,
			FirstSeen: tp(from), LastSeen: tp(to.Add(-time.Minute)),
			CreatedAt: tp(to.AddDate(0, 0, -67)), LastRotation: tp(to.AddDate(0, 0, -67)),
			KeyAgeDays: 67, RotationDueDays: 23, Series: series(40000, 10),
		},
	}
	r := &Report{Period: "24h", From: from, To: to, PrevFrom: from.Add(-24 * time.Hour), PrevTo: from,
		GeneratedAt: to.Add(4 * time.Minute), Database: "auditwatch", Bucket: time.Hour,
		Totals: Totals{Errors: map[string]uint64{}, Signals: map[string]uint64{"auth-failure-burst-low": 1}}, Keys: keys}
	for _, k := range keys {
		r.Totals.Keys++
		if k.Requests > 0 {
			r.Totals.ActiveKeys++
		}
		if len(k.Flags) > 0 {
			r.Totals.FlaggedKeys++
		}
		r.Totals.Requests += k.Requests
		r.Totals.PrevRequests += k.PrevRequests
		for code, n := range k.Errors {
			r.Totals.Errors[code] += n
		}
		for _, sg := range k.Signals {
			r.Totals.Signals[sg.RuleID] += uint64(sg.Count)
		}
		if len(k.Signals) > 0 {
			r.Totals.SignalKeys++
		}
	}
	return r
}

// sampleLabels are the keys of sampleRenderReport as people see them, in order.
var sampleLabels = []string{"bk_live_a1b2…o5p6", "bk_live_c3d4…q7r8", "9f1c2e3d4b5a6978", "bk_live_e5f6…s9t0",
	"bk_live_g7h8…u1v2", "bk_test_ZZZZ…2222"}

// sampleFlagged tells which of sampleLabels carry a flag.
var sampleFlagged = []bool{true, true, true, true, true, false}

func renderString(tb testing.TB, r *Report, format string) string {
	tb.Helper()
	var b bytes.Buffer
	if err := Render(&b, r, format); err != nil {
		tb.Fatalf("Render(%s): %v", format, err)
	}
	return b.String()
}

// renderInOrder fails unless every one of subs occurs in s after the previous.
func renderInOrder(tb testing.TB, s string, subs []string) {
	tb.Helper()
	pos := 0
	for _, sub := range subs {
		i := strings.Index(s[pos:], sub)
		if i < 0 {
			tb.Errorf("%q missing or out of order (after offset %d)", sub, pos)
			return
		}
		pos += i + len(sub)
	}
}

// renderSection returns the part of s from the first occurrence of start to the
// next occurrence of end (or the end of s).
func renderSection(tb testing.TB, s, start, end string) string {
	tb.Helper()
	i := strings.Index(s, start)
	if i < 0 {
		tb.Fatalf("no %q in output", start)
	}
	s = s[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		s = s[:j]
	}
	return s
}

func TestRenderAllFormats(t *testing.T) {
	for _, format := range Formats() {
		t.Run(format, func(t *testing.T) {
			r := sampleRenderReport(t)
			out := renderString(t, r, format)
			if out == "" {
				t.Fatal("empty output")
			}
			if m := fullKeyRe.FindString(out); m != "" {
				t.Errorf("output contains a full key: %q", m)
			}
			if strings.Contains(out, "Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2") {
				t.Error("output contains the body of the full key")
			}
			if !reflect.DeepEqual(r, sampleRenderReport(t)) {
				t.Error("Render modified the report")
			}
		})
	}
}

func TestRenderTable(t *testing.T) {
	long := sampleRenderReport(t)
	long.Keys[1].Owner = strings.Repeat("Very long owner name ", 8)
	long.Keys[1].Errors = map[string]uint64{"a_very_long_error_code_name_here": 5000, "another_quite_long_code": 4000, "third_code": 1}
	long.Keys[1].Flags = []string{FlagOutsideAllowlist, FlagHighErrorRate, FlagOpenFindings, FlagRotationOverdue, FlagUnusualChange, FlagExpiredInUse, FlagStale}
	long.Keys[1].Requests = 123_456_789_012
	roomy := sampleRenderReport(t)
	roomy.Keys = roomy.Keys[:1]
	roomy.Keys[0].Owner = "Desk Ops"
	roomy.Keys[0].Errors = map[string]uint64{"invalid_signature": 230, "ip_not_whitelisted": 12}
	roomy.Keys[0].Flags = []string{FlagRotationOverdue}

	tests := []struct {
		name   string
		r      *Report
		want   []string
		absent []string
	}{
		{"sample", sampleRenderReport(t), []string{"API key usage review · 24h · 2025-06-01 00:00 → 2025-06-02 00:00 UTC",
			"6 keys · 5 active · 5 flagged · 58,400 requests (+17% vs 50,100 in the previous period)",
			"invalid_sig… 230 +2", "overdue 41d", "in 23d", "new", "−2%", "12/340",
			"findings outside rotate", "flags: findings = findings alerted in the period"},
			[]string{"198.51.100.7", "<script>alert(1)</script> | Ops (acct-100)"}}, // only the IP count; the owner is cut
		{"roomy", roomy, []string{"Desk Ops (acct-100)", "invalid_signature 230 +1"}, nil},
		{"long cells", long, []string{"…", "123,456,789,012"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := renderString(t, tt.r, "table")
			for i, line := range strings.Split(out, "\n") {
				if n := utf8.RuneCountInString(line); n > tableWidth {
					t.Errorf("line %d is %d wide: %q", i+1, n, line)
				}
			}
			rows := renderSection(t, out, "KEY ", "\n\n")
			renderInOrder(t, rows, sampleLabels[:len(tt.r.Keys)])
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out, a) {
					t.Errorf("output contains %q", a)
				}
			}
		})
	}
}

// unescapedPipes counts the cell separators of a Markdown table row.
func unescapedPipes(line string) int {
	n := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n
}

func TestRenderMarkdown(t *testing.T) {
	out := renderString(t, sampleRenderReport(t), "md")
	attention := renderSection(t, out, "## Needs attention (5)", "## All keys")
	all := renderSection(t, out, "## All keys (6)", "\x00")
	for i, label := range sampleLabels {
		if got := strings.Contains(attention, label); got != sampleFlagged[i] {
			t.Errorf("%s in Needs attention = %v, want %v", label, got, sampleFlagged[i])
		}
	}
	renderInOrder(t, attention, sampleLabels[:5])
	renderInOrder(t, all, sampleLabels)

	// Every row of a table has as many separators as its header.
	cols := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		if cols == 0 {
			cols = unescapedPipes(line)
			continue
		}
		if n := unescapedPipes(line); n != cols {
			t.Errorf("row has %d separators, header %d: %q", n, cols, line)
		}
	}
	for _, want := range []string{
		"# API key usage review — 24h",
		`Desk &lt;script&gt;alert(1)&lt;/script&gt; \| Ops (acct-100)`, // in a table cell
		"Desk &lt;script&gt;alert(1)&lt;/script&gt; | Ops (acct-100)",  // in a heading
		"- **Rotation overdue:** 41 days past due (last rotated 2025-01-22).",
		"- **Open findings:** 1 finding alerted in the period.\n" +
			"  - `outside_allowlist_ip` (high, 2025-06-01 19:00 UTC) — Key bk_live_Q7w8…G1h2 used from 203.0.113.9",
		"- **Outside allowlist:** 62 requests from 2 addresses outside 10.0.0.0/8.\n  - `198.51.100.7`, `203.0.113.9`\n",
		"  - `2001:db8:85a3::8a2e:370:7334`\n",
		"- **High error rate:** 200 of 900 requests failed (success rate 77.8%).",
		"- Top paths: `/v1/orders` 9,000, `/v1/positions?x=<script>|y` 2,000",
		"`bk_live_e5f6…s9t0` | live | Market data \\| feed (acct-300) | 5,200 | new |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// <script> only inside code spans, where Markdown shows it literally.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(strings.ReplaceAll(line, "`/v1/positions?x=<script>|y`", ""), "<script") {
			t.Errorf("raw <script> outside a code span: %q", line)
		}
	}
}

func TestRenderCSV(t *testing.T) {
	r := sampleRenderReport(t)
	r.Keys[5].Owner = "=HYPERLINK(\"x\")"
	out := renderString(t, r, "csv")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v", err)
	}
	wantHeader := []string{"key_id", "key_hint", "env", "account_id", "owner", "status", "registered", "requests",
		"prev_requests", "change", "successes", "success_rate", "distinct_ips", "outside_requests", "outside_ips",
		"p50_latency_ms", "p95_latency_ms", "bytes_in", "bytes_out", "first_seen", "last_seen", "key_age_days",
		"rotation_due_days", "flags", "open_findings", "errors", "top_paths", "signals", "signal_rules", "latest_signal"}
	if !reflect.DeepEqual(recs[0], wantHeader) {
		t.Fatalf("header = %v\nwant %v", recs[0], wantHeader)
	}
	if len(recs) != len(r.Keys)+1 {
		t.Fatalf("%d records, want %d", len(recs), len(r.Keys)+1)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for i, id := range []string{"kid_desk_01", "kid_quant_02", "9f1c2e3d4b5a6978", "kid_feed_04", "kid_old_05", "kid_sandbox_06"} {
		if got := recs[i+1][col["key_id"]]; got != id {
			t.Errorf("row %d key_id = %q, want %q", i+1, got, id)
		}
	}
	tests := []struct {
		row  int
		col  string
		want string
	}{
		{1, "key_hint", "bk_live_a1b2…o5p6"},
		{1, "owner", "Desk <script>alert(1)</script> | Ops"},
		{1, "registered", "true"},
		{1, "change", "0.5"},
		{1, "success_rate", "0.975"},
		{1, "outside_ips", "198.51.100.7 203.0.113.9"},
		{1, "flags", "open_findings outside_allowlist rotation_overdue signals"},
		{1, "signals", "3"},
		{1, "signal_rules", "ip-allowlist-rejected=3"},
		{2, "signals", "3"},
		{2, "signal_rules", "clock-skew=2 ip-allowlist-rejected=1"},
		{2, "latest_signal", "client clock 420 s ahead"},
		{1, "latest_signal", "Rejected request with bk_live_Q7w8…G1h2 from 198.51.100.99"},
		{6, "latest_signal", ""},
		{6, "signals", "0"},
		{6, "signal_rules", ""},
		{1, "open_findings", "1"},
		{1, "errors", "invalid_signature=230 ip_not_whitelisted=62 rate_limited=8"},
		{1, "top_paths", "/v1/orders=9000 /v1/positions?x=<script>|y=2000 /v1/account=1000"},
		{1, "first_seen", "2025-06-01T00:05:00Z"},
		{1, "rotation_due_days", "-41"},
		{1, "key_age_days", "131"},
		{2, "outside_ips", "2001:db8:85a3::8a2e:370:7334"},
		{2, "top_paths", "/v1/keys/bk_live_Q7w8…G1h2 /v1/quotes"},
		{3, "key_hint", ""},
		{3, "registered", "false"},
		{3, "rotation_due_days", ""},
		{3, "status", ""},
		{4, "change", "inf"},
		{5, "requests", "0"},
		{5, "change", "0"},
		{5, "first_seen", ""},
		{5, "last_seen", "2025-03-24T00:00:00Z"},
		{6, "owner", "'=HYPERLINK(\"x\")"},
		{6, "flags", ""},
		{6, "env", "test"},
	}
	for _, tt := range tests {
		if got := recs[tt.row][col[tt.col]]; got != tt.want {
			t.Errorf("row %d %s = %q, want %q", tt.row, tt.col, got, tt.want)
		}
	}
}

func TestRenderJSON(t *testing.T) {
	r := sampleRenderReport(t)
	r.Keys[2].P50LatencyMS = math.NaN()
	out := renderString(t, r, "json")
	var got struct {
		Period        string           `json:"period"`
		BucketSeconds float64          `json:"bucket_seconds"`
		Totals        Totals           `json:"totals"`
		Keys          []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("parse JSON: %v", err)
	}
	if got.Period != "24h" || got.BucketSeconds != 3600 || got.Totals.Requests != 58400 {
		t.Errorf("period %q, bucket_seconds %v, totals.requests %d", got.Period, got.BucketSeconds, got.Totals.Requests)
	}
	if len(got.Keys) != 6 {
		t.Fatalf("%d keys, want 6", len(got.Keys))
	}
	for i, id := range []string{"kid_desk_01", "kid_quant_02", "9f1c2e3d4b5a6978", "kid_feed_04", "kid_old_05", "kid_sandbox_06"} {
		if got.Keys[i]["key_id"] != id {
			t.Errorf("key %d = %v, want %s", i, got.Keys[i]["key_id"], id)
		}
	}
	tests := []struct {
		key   int
		field string
		want  any
	}{
		{3, "change", nil},
		{0, "change", 0.5},
		{2, "p50_latency_ms", nil},
		{2, "p95_latency_ms", 45.0},
		{0, "rotation_due_days", -41.0},
		{4, "outside_ips", []any{}},
		{0, "outside_ips", []any{"198.51.100.7", "203.0.113.9"}},
	}
	for _, tt := range tests {
		v, ok := got.Keys[tt.key][tt.field]
		if !ok || !reflect.DeepEqual(v, tt.want) {
			t.Errorf("keys[%d].%s = %#v (present %v), want %#v", tt.key, tt.field, v, ok, tt.want)
		}
	}
	sum := got.Keys[0]["open_findings"].([]any)[0].(map[string]any)["summary"]
	if sum != "Key bk_live_Q7w8…G1h2 used from 203.0.113.9, outside its allowlist" {
		t.Errorf("finding summary = %q", sum)
	}
	if n := len(got.Keys[0]["series"].([]any)); n != 24 {
		t.Errorf("series has %d points, want 24", n)
	}
}

// htmlCheck parses page as XML (the template writes well-formed markup) and
// returns an error for any external reference: src, href, action… or url()
// and @import in styles.
func htmlCheck(page string) (elements map[string]int, err error) {
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	elements = map[string]int{}
	var stack []string
	inStyle := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return elements, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			elements[tok.Name.Local]++
			stack = append(stack, tok.Name.Local)
			inStyle = tok.Name.Local == "style"
			for _, a := range tok.Attr {
				switch strings.ToLower(a.Name.Local) {
				case "src", "href", "action", "formaction", "srcset", "poster", "data", "background", "manifest":
					return elements, errors.New("external reference: " + a.Name.Local + "=" + a.Value)
				case "style":
					if strings.Contains(a.Value, "url(") {
						return elements, errors.New("url() in a style attribute")
					}
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			inStyle = false
		case xml.CharData:
			if inStyle && (strings.Contains(string(tok), "url(") || strings.Contains(string(tok), "@import")) {
				return elements, errors.New("url() or @import in the style sheet")
			}
		}
	}
	if len(stack) != 0 {
		return elements, errors.New("unclosed elements: " + strings.Join(stack, " "))
	}
	return elements, nil
}

func TestRenderHTML(t *testing.T) {
	out := renderString(t, sampleRenderReport(t), "html")
	elements, err := htmlCheck(out)
	if err != nil {
		t.Fatalf("HTML check: %v", err)
	}
	for _, el := range []string{"html", "head", "title", "meta", "style", "body", "svg", "polyline", "rect", "table"} {
		if elements[el] == 0 {
			t.Errorf("no <%s> element", el)
		}
	}
	if elements["script"] > 0 || strings.Contains(strings.ToLower(out), "<script") {
		t.Error("page contains a <script> tag")
	}
	for _, bad := range []string{"http://", "https://", "@font-face", "url("} {
		if strings.Contains(out, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	for _, want := range []string{
		`<meta charset="utf-8"/>`,
		`<svg class="chart" viewBox="0 0 960 300" width="960" height="300" role="img" aria-labelledby="lines-title lines-desc">`,
		`<title id="lines-title">Requests per hour of the 5 busiest keys`,
		`<title id="errors-title">Failed requests by error code`,
		"Desk &lt;script&gt;alert(1)&lt;/script&gt; | Ops",
		"/v1/positions?x=&lt;script&gt;|y 2,000",
		"Key bk_live_Q7w8…G1h2 used from 203.0.113.9",
		"<code>2001:db8:85a3::8a2e:370:7334</code>",
		`<span class="badge warn" title="rotation_overdue">Rotation overdue</span>`,
		`<dd class="overdue">overdue 41d</dd>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	attention := renderSection(t, out, `<section id="attention">`, "</section>")
	if n := strings.Count(attention, "<article "); n != 5 {
		t.Errorf("%d cards in Needs attention, want 5", n)
	}
	for i, label := range sampleLabels {
		if got := strings.Contains(attention, label); got != sampleFlagged[i] {
			t.Errorf("%s in Needs attention = %v, want %v", label, got, sampleFlagged[i])
		}
	}
	renderInOrder(t, attention, sampleLabels[:5])
	renderInOrder(t, renderSection(t, out, `<section id="keys">`, "</section>"), sampleLabels)
	// Every sparkline and chart is labelled for assistive technology.
	if n, m := strings.Count(out, "<svg "), strings.Count(out, `role="img"`)+strings.Count(out, `aria-hidden="true"`); n != m {
		t.Errorf("%d <svg>, %d with role=img or aria-hidden", n, m)
	}
}

// TestRenderHTMLFile writes the sample page to a file, for a look in a
// browser: set AUDITWATCH_RENDER_HTML to a path to keep it.
func TestRenderHTMLFile(t *testing.T) {
	path := os.Getenv("AUDITWATCH_RENDER_HTML")
	if path == "" {
		path = filepath.Join(t.TempDir(), "report.html")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Render(f, sampleRenderReport(t), "html"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

func TestRenderEdgeCases(t *testing.T) {
	empty := &Report{Period: "7d", From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 8, 0, 0, 0, 0, time.UTC)}
	odd := sampleRenderReport(t)
	odd.Bucket = 0
	odd.Keys[0].Change = math.NaN()
	odd.Keys[0].SuccessRate = math.NaN()
	odd.Keys[0].P95LatencyMS = math.Inf(1)
	odd.Keys[1].Series = nil
	odd.Keys[2].Owner = "line\nbreak\tand\x1b[31m escape \u202Eevil"
	odd.Keys[3].Hint = renderFullKey // a full key where a hint belongs
	odd.Keys[4].Flags = []string{"future_flag"}
	odd.Totals.Errors = nil

	for _, tt := range []struct {
		name string
		r    *Report
	}{{"no keys", empty}, {"odd values", odd}} {
		for _, format := range Formats() {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				out := renderString(t, tt.r, format)
				if m := fullKeyRe.FindString(out); m != "" {
					t.Errorf("output contains a full key: %q", m)
				}
				if strings.ContainsAny(out, "\x1b\u202E") {
					t.Error("output contains an escape or bidi control")
				}
				if format == "html" {
					if _, err := htmlCheck(out); err != nil {
						t.Errorf("HTML check: %v", err)
					}
				}
				if format == "table" {
					for _, line := range strings.Split(out, "\n") {
						if utf8.RuneCountInString(line) > tableWidth {
							t.Errorf("line too wide: %q", line)
						}
					}
				}
			})
		}
	}
}

type renderFailWriter struct{}

func (renderFailWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name   string
		w      io.Writer
		r      *Report
		format string
		want   string
	}{
		{"unknown format", io.Discard, sampleRenderReport(t), "pdf", `unknown format "pdf": want one of table, md, csv, json, html`},
		{"empty format", io.Discard, sampleRenderReport(t), "", "want one of table, md, csv, json, html"},
		{"nil report", io.Discard, nil, "json", "nil report"},
		{"write error", renderFailWriter{}, sampleRenderReport(t), "csv", "write csv report: disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Render(tt.w, tt.r, tt.format)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestRenderGolden compares the text formats with testdata/render.*; run
// with -update-render to rewrite them after a deliberate change.
func TestRenderGolden(t *testing.T) {
	for _, tt := range []struct{ format, file string }{
		{"table", "render.table.golden"},
		{"md", "render.md.golden"},
		{"csv", "render.csv.golden"},
	} {
		t.Run(tt.format, func(t *testing.T) {
			got := renderString(t, sampleRenderReport(t), tt.format)
			path := filepath.Join("testdata", tt.file)
			if *updateRenderGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run with -update-render to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("%s output differs from %s (run with -update-render to accept):\n%s", tt.format, path, got)
			}
		})
	}
}

func TestRenderAxisTicks(t *testing.T) {
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		from, to time.Time
		labels   []string
	}{
		{"24h", day, day.Add(24 * time.Hour), []string{"00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00", "00:00"}},
		{"24h off the hour", day.Add(90 * time.Minute), day.Add(25*time.Hour + 30*time.Minute), []string{"03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00", "00:00"}},
		{"7d", day, day.AddDate(0, 0, 7), []string{"Jun 1", "Jun 2", "Jun 3", "Jun 4", "Jun 5", "Jun 6", "Jun 7", "Jun 8"}},
		{"30d", day, day.AddDate(0, 0, 30), []string{"Jun 2", "Jun 9", "Jun 16", "Jun 23", "Jun 30"}}, // Mondays
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tk := range timeTicks(tt.from, tt.to, 8) {
				got = append(got, tk.label)
			}
			if !reflect.DeepEqual(got, tt.labels) {
				t.Errorf("labels = %q, want %q", got, tt.labels)
			}
		})
	}
	for _, tt := range []struct{ top, step, max float64 }{{0, 1, 1}, {3, 1, 3}, {3420, 1000, 4000}, {300, 100, 300}, {301, 100, 400}, {12, 5, 15}} {
		if step, m := niceScale(tt.top, 4); step != tt.step || m != tt.max {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tt.top, step, m, tt.step, tt.max)
		}
	}
}

func TestRenderCellFormats(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"change up", fmtChange(0.354, 1354, 1000), "+35%"},
		{"change down", fmtChange(-0.8, 20, 100), "−80%"},
		{"change new", fmtChange(math.Inf(1), 5, 0), "new"},
		{"change none", fmtChange(0, 0, 0), "—"},
		{"change flat", fmtChange(0.001, 1001, 1000), "±0%"},
		{"change tenfold", fmtChange(12, 1300, 100), "×13"},
		{"change NaN", fmtChange(math.NaN(), 1, 1), "—"},
		{"rate", fmtRate(0.975, 10), "97.5%"},
		{"rate almost all", fmtRate(0.99999, 100000), ">99.9%"},
		{"rate no requests", fmtRate(0, 0), "—"},
		{"count", fmtCount(1234567), "1,234,567"},
		{"compact", fmtCompact(3400), "3.4k"},
		{"counts fit", fitCounts([]Count{{"invalid_signature", 230}, {"ip_not_whitelisted", 12}}, 24), "invalid_signature 230 +1"},
		{"counts cut", fitCounts([]Count{{"invalid_signature", 230}, {"ip_not_whitelisted", 12}}, 16), "invalid_… 230 +1"},
		{"truncate", ellipsize("Desk Ops, London", 10), "Desk Ops…"},
		{"md code with backticks", mdCode("a`b"), "``a`b``"},
		{"md text", mdText("<b>*x*</b> _y_ a_b [l](u)"), `&lt;b&gt;\*x\*&lt;/b&gt; \_y\_ a_b \[l\](u)`},
		{"csv formula", csvText("=1+1"), "'=1+1"},
		{"clean", cleanText("a\u202Eb\x00c bk_live_ABCDEFGHIJKLMNOPQRST"), "ab c bk_live_ABCD…QRST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	due := func(days float64) string {
		d := time.Now()
		return fmtRotation(&KeySummary{Registered: true, LastRotation: &d, RotationDueDays: days})
	}
	for _, tt := range []struct {
		days float64
		want string
	}{{23.7, "in 23d"}, {0.4, "due today"}, {-0.2, "overdue 1d"}, {-41, "overdue 41d"}} {
		if got := due(tt.days); got != tt.want {
			t.Errorf("fmtRotation(%v) = %q, want %q", tt.days, got, tt.want)
		}
	}
	if got := fmtRotation(&KeySummary{RotationDueDays: -5}); got != "—" {
		t.Errorf("fmtRotation(unregistered) = %q, want —", got)
	}
}

// TestRenderSignals checks that every format shows the signals (recorded,
// not alerted) apart from the alerted findings, with their counts by rule
// and the latest summary, masked and escaped like all text.
func TestRenderSignals(t *testing.T) {
	tests := []struct {
		format string
		want   []string
		absent []string
	}{
		{"table", []string{
			"signals (recorded, not alerted): 7 · ip-allowlist-rejected 4, clock-skew 2, auth-failure-burst-low 1",
			"\nsignals (recorded, not alerted):\n  bk_live_a1b2…o5p6  ip-allowlist-rejected 3 · latest 06-01 22:00: Rejected request with bk_live_Q7w8…G1h2 from 198.51.100.99\n" +
				"  bk_live_c3d4…q7r8  clock-skew 2, ip-allowlist-rejected 1 · latest 06-01 18:00: client clock 420 s ahead\n",
		}, []string{"rotate signals", "signals = "}},
		{"md", []string{
			"7 signals were recorded and not alerted (info or low severity): `ip-allowlist-rejected` 4, `clock-skew` 2, `auth-failure-burst-low` 1.",
			"| Key | Owner / account | Requests | Change | Flags | Open findings | Signals |",
			"- **Open findings:** 1 finding alerted in the period.\n  - `outside_allowlist_ip` (high,",
			"- **Signals:** 3 signals from 2 rules in the period, recorded and not alerted.\n" +
				"  - `clock-skew` ×2 (info, latest 2025-06-01 18:00 UTC) — client clock 420 s ahead\n" +
				"  - `ip-allowlist-rejected` ×1 (low, latest 2025-06-01 15:00 UTC) — one request from 2001:db8::1 rejected &lt;b&gt;|&lt;/b&gt;\n",
		}, []string{"<b>"}},
		{"html", []string{
			`<div class="tile"><div class="label">Signals</div><div class="value">7</div><div class="note">recorded, not alerted · most: ip-allowlist-rejected</div></div>`,
			`<div class="section"><div class="h">Alerted findings</div>`,
			`<div class="section signals"><div class="h">Signals · recorded, not alerted</div>`,
			`<td><code>clock-skew</code> ×2</td><td>client clock 420 s ahead</td><td class="dim">latest 2025-06-01 18:00 UTC</td>`,
			"one request from 2001:db8::1 rejected &lt;b&gt;|&lt;/b&gt;",
			`<h2>Signals — recorded, not alerted (7)</h2>`,
			"2 listed keys have some.",
			`<span class="badge muted" title="signals">Signals</span>`,
		}, []string{"<b>"}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			out := renderString(t, sampleRenderReport(t), tt.format)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out, a) {
					t.Errorf("output contains %q", a)
				}
			}
		})
	}
	t.Run("html sections", func(t *testing.T) {
		out := renderString(t, sampleRenderReport(t), "html")
		sig := renderSection(t, out, `<section id="signals">`, "</section>")
		renderInOrder(t, sig, []string{"ip-allowlist-rejected 4", "clock-skew 2", "auth-failure-burst-low 1", sampleLabels[0], sampleLabels[1]})
		for _, label := range sampleLabels[2:] {
			if strings.Contains(sig, label) {
				t.Errorf("%s in the signals section without signals", label)
			}
		}
		// Alerted findings and signals are separate parts of a card.
		card := renderSection(t, out, `<article class="card crit" aria-labelledby="card-k1">`, "</article>")
		renderInOrder(t, card, []string{"Alerted findings", "outside_allowlist_ip", "Signals · recorded, not alerted", "ip-allowlist-rejected"})
		empty := sampleRenderReport(t)
		empty.Totals.Signals = nil
		for i := range empty.Keys {
			empty.Keys[i].Signals = nil
		}
		out = renderString(t, empty, "html")
		if strings.Contains(out, `<section id="signals">`) || !strings.Contains(out, `<div class="note">none recorded</div>`) {
			t.Error("a report without signals has a signals section, or no empty tile")
		}
	})
	t.Run("json", func(t *testing.T) {
		var got struct {
			Totals Totals `json:"totals"`
			Keys   []struct {
				OpenFindings []FindingRef `json:"open_findings"`
				Signals      []SignalRef  `json:"signals"`
			} `json:"keys"`
		}
		if err := json.Unmarshal([]byte(renderString(t, sampleRenderReport(t), "json")), &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{"ip-allowlist-rejected": 4, "clock-skew": 2, "auth-failure-burst-low": 1}
		if !reflect.DeepEqual(got.Totals.Signals, want) || got.Totals.SignalKeys != 2 {
			t.Errorf("totals signals %v on %d keys, want %v on 2", got.Totals.Signals, got.Totals.SignalKeys, want)
		}
		if s := got.Keys[0].Signals; len(s) != 1 || s[0].Count != 3 || s[0].Summary != "Rejected request with bk_live_Q7w8…G1h2 from 198.51.100.99" {
			t.Errorf("key 0 signals %+v", s)
		}
		if len(got.Keys[0].OpenFindings) != 1 || len(got.Keys[1].Signals) != 2 || got.Keys[5].Signals == nil {
			t.Errorf("open findings %d, key 1 signals %d, key 5 signals %v (want [])", len(got.Keys[0].OpenFindings), len(got.Keys[1].Signals), got.Keys[5].Signals)
		}
	})
}
