package summary_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/deploy/testenv/benchdata"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// TestRollupAgreesWithRawEvents generates two days of traffic with every
// scenario, ingests it through the real decoder and sink (the materialized
// views fill the rollups), and checks the report built from the rollups
// against direct counts on access_log.
func TestRollupAgreesWithRawEvents(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	start := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	g := benchdata.Ingest(t, conn, db, gen.Config{Seed: 3, Start: start, Duration: 48 * time.Hour, Events: 120_000, Scenarios: []string{gen.ScenarioAll}})
	ks := keys.NewStore(conn, db)
	to := start.Add(48 * time.Hour)
	// A registered key presented once without the gateway knowing its id:
	// access_log.key_id is then its fingerprint, which the report folds in.
	var folded gen.Key
	for _, k := range g.Keys() {
		if k.Status == "active" && k.Env == "live" {
			folded = k
			break
		}
	}
	{
		var extra event.Rows
		dec := event.NewDecoder(0, 1000*time.Hour)
		for i := 0; i < 7; i++ {
			// From the key's usual addresses: distinct IPs must be counted
			// over both identities together, not added.
			raw := fmt.Sprintf(`{"ts":"%s","request_id":"fold-%d","method":"GET","path":"/v1/orders","status":200,"client_ip":"%s","api_key":"%s"}`,
				to.Add(-3*time.Hour).Format(time.RFC3339), i, folded.HomeIPs[i%len(folded.HomeIPs)], folded.Secret)
			r, err := dec.Decode([]byte(raw), to)
			if err != nil {
				t.Fatal(err)
			}
			extra.Append(&r)
		}
		if err := chsink.New(conn, db).Write(ctx, &extra, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A finding to show up as open.
	var any string
	for _, in := range g.Incidents() {
		if in.Name == "invalid_signature_burst" {
			any = in.KeyID
		}
	}
	if err := detect.NewStore(conn, db).SaveFindings(ctx, []detect.Finding{{ID: "f1", RuleID: "invalid-signature-burst", Severity: "high", Status: "new",
		GroupKey: "key_id=" + any, KeyID: any, EvalTime: to.Add(-2 * time.Hour), Summary: "burst"}}); err != nil {
		t.Fatal(err)
	}

	rep, err := summary.NewBuilder(conn, db, ks).Build(ctx, summary.Options{Period: "24h", To: to})
	if err != nil {
		t.Fatal(err)
	}
	from := to.Add(-24 * time.Hour)
	type raw struct {
		Key      string `ch:"key_id"`
		Requests uint64 `ch:"requests"`
		OK       uint64 `ch:"ok"`
		IPs      uint64 `ch:"ips"`
		Sig      uint64 `ch:"sig"`
	}
	var want []raw
	if err := conn.Select(ctx, &want, "SELECT key_id, count() AS requests, countIf(status < 400) AS ok, uniqExact(client_ip) AS ips, countIf(error_code = 'invalid_signature') AS sig FROM "+db+
		".access_log WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND key_id != '' GROUP BY key_id", uint32(from.Unix()), uint32(to.Unix())); err != nil {
		t.Fatal(err)
	}
	got := map[string]summary.KeySummary{}
	for _, k := range rep.Keys {
		got[k.KeyID] = k
	}
	fp := secret.Fingerprint(folded.Secret)
	var total, unknown uint64
	var unknownKeys int
	var foldedRaw raw
	for _, w := range want {
		if w.Key == folded.ID || w.Key == fp {
			foldedRaw.Requests += w.Requests
			foldedRaw.OK += w.OK
			total += w.Requests
			continue
		}
		k, ok := got[w.Key]
		if !ok {
			// Only keys that never worked and are not registered (guesses,
			// typos) are left out, and counted in the totals.
			if w.OK != 0 {
				t.Fatalf("key %s (%d requests, %d ok) missing from the report", w.Key, w.Requests, w.OK)
			}
			unknown += w.Requests
			unknownKeys++
			continue
		}
		if k.Requests != w.Requests || k.Successes != w.OK || k.Errors["invalid_signature"] != w.Sig || k.DistinctIPs != w.IPs {
			t.Errorf("key %s: report requests %d ok %d sig %d ips %d; raw %d %d %d %d", w.Key, k.Requests, k.Successes, k.Errors["invalid_signature"], k.DistinctIPs, w.Requests, w.OK, w.Sig, w.IPs)
		}
		total += w.Requests
	}
	if fk := got[folded.ID]; fk.Requests != foldedRaw.Requests || fk.Successes != foldedRaw.OK || foldedRaw.Requests == 0 {
		t.Errorf("key %s presented by id and by fingerprint: report %d requests (%d ok), raw %d (%d ok)", folded.ID, fk.Requests, fk.Successes, foldedRaw.Requests, foldedRaw.OK)
	}
	foldedIPs := testenv.Count(t, conn, "SELECT uniqExact(client_ip) FROM "+db+".access_log WHERE key_id IN (?, ?) AND ts >= toDateTime(?) AND ts < toDateTime(?)",
		folded.ID, fp, uint32(from.Unix()), uint32(to.Unix()))
	if fk := got[folded.ID]; fk.DistinctIPs != foldedIPs {
		t.Errorf("key %s: %d distinct IPs in the report, %d in access_log", folded.ID, fk.DistinctIPs, foldedIPs)
	}
	if _, ok := got[fp]; ok {
		t.Errorf("fingerprint %s listed apart from its key %s", fp, folded.ID)
	}
	if rep.Totals.Requests != total || rep.Totals.UnknownRequests != unknown || rep.Totals.UnknownKeys != unknownKeys || unknownKeys == 0 {
		t.Errorf("totals %d (+%d unknown in %d keys), raw %d (+%d in %d)", rep.Totals.Requests, rep.Totals.UnknownRequests, rep.Totals.UnknownKeys, total, unknown, unknownKeys)
	}
	// Registry keys without traffic are listed; flags are set.
	flags := map[string]int{}
	for _, k := range rep.Keys {
		for _, f := range k.Flags {
			flags[f]++
		}
		if len(k.Series) != 24 {
			t.Fatalf("key %s: %d series points, want 24", k.KeyID, len(k.Series))
		}
	}
	for _, f := range []string{summary.FlagRotationOverdue, summary.FlagNoAllowlist, summary.FlagOpenFindings, summary.FlagStale} {
		if flags[f] == 0 {
			t.Errorf("no key flagged %s (flags %v)", f, flags)
		}
	}
	if rep.Keys[0].Priority < rep.Keys[len(rep.Keys)-1].Priority || len(rep.Keys[0].Flags) == 0 {
		t.Error("keys not sorted by priority")
	}
	// Scheduled delivery: files written, digest posted with them attached.
	rec := &posterRecorder{}
	dir := t.TempDir()
	d := &summary.Deliverer{Builder: summary.NewBuilder(conn, db, ks), Poster: rec, OutDir: dir}
	paths, err := d.Deliver(ctx, summary.Schedule{Period: "24h", Formats: []string{"html", "csv", "md"}, Channel: "#sec-review"}, to)
	if err != nil || len(paths) != 3 {
		t.Fatalf("deliver: %v %v", paths, err)
	}
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Fatalf("report file %s: %v", p, err)
		}
	}
	if rec.channel != "#sec-review" || len(rec.files) != 3 || !strings.Contains(rec.text, "Needs attention") || !strings.Contains(rec.text, "Busiest keys") {
		t.Fatalf("digest: %q to %s with %d files", rec.text, rec.channel, len(rec.files))
	}
	// A 30-day report (day buckets anchored at the report's hour) keeps
	// every request in its series.
	month, err := summary.NewBuilder(conn, db, ks).Build(ctx, summary.Options{Period: "30d", To: to.Add(-5 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range month.Keys {
		var sum uint64
		for _, p := range k.Series {
			sum += p.Requests
		}
		if len(k.Series) != 30 || sum != k.Requests {
			t.Fatalf("30d key %s: %d points summing to %d, want 30 summing to %d", k.KeyID, len(k.Series), sum, k.Requests)
		}
	}
	// One key only.
	one, err := summary.NewBuilder(conn, db, ks).Build(ctx, summary.Options{Period: "24h", To: to, KeyID: want[0].Key})
	if err != nil || len(one.Keys) != 1 || one.Keys[0].Requests != want[0].Requests {
		t.Fatalf("--key report: %v, %+v", err, one)
	}
}

type posterRecorder struct {
	channel, text string
	files         []alerts.Attachment
}

func (p *posterRecorder) PostReport(_ context.Context, channel, text string, files []alerts.Attachment) error {
	p.channel, p.text, p.files = channel, text, files
	return nil
}

// TestFindingsAndSignals stores findings with every status and checks that
// the report shows the alerted ones (new) as open findings and the signals
// (info/low, never alerted) per key and rule and in the totals, that a
// finding naming its key by fingerprint folds into the registry id, and that
// suppressed repeats and findings outside the period show nowhere.
func TestFindingsAndSignals(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	to := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	created := to.AddDate(0, 0, -10)
	reg := keys.NewStore(conn, db)
	if err := reg.Upsert(ctx, []keys.Key{
		{ID: "key_A", Fingerprint: "aaaaaaaaaaaaaaaa", Hint: "bk_live_AAAA…0001", Env: "live", Status: "active", CreatedAt: created,
			AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{ID: "key_B", Fingerprint: "bbbbbbbbbbbbbbbb", Hint: "bk_live_BBBB…0002", Env: "live", Status: "active", CreatedAt: created,
			AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{ID: "key_C", Hint: "bk_test_CCCC…0003", Env: "test", Status: "active", CreatedAt: created},
	}, "import"); err != nil {
		t.Fatal(err)
	}
	n := 0
	f := func(rule, severity, status, keyID, fp string, ago time.Duration, summary string) detect.Finding {
		n++
		group := "key_id=" + keyID
		if keyID == "" && fp == "" {
			group = fmt.Sprintf("client_ip=192.0.2.%d", n)
		}
		return detect.Finding{ID: fmt.Sprintf("f%02d", n), RuleID: rule, Severity: severity, Status: status, GroupKey: group,
			KeyID: keyID, KeyFingerprint: fp, EvalTime: to.Add(-ago), Summary: summary}
	}
	if err := detect.NewStore(conn, db).SaveFindings(ctx, []detect.Finding{
		f("outside-allowlist", "critical", detect.StatusNew, "key_A", "aaaaaaaaaaaaaaaa", 3*time.Hour, "A used from 203.0.113.9"),
		f("outside-allowlist", "critical", detect.StatusSuppressed, "key_A", "", 2*time.Hour, "suppressed repeat"),
		f("outside-allowlist-rejected", "low", detect.StatusSignal, "key_A", "", 5*time.Hour, "one rejected request from 198.51.100.1"),
		f("outside-allowlist-rejected", "low", detect.StatusSignal, "key_A", "", 1*time.Hour, "one rejected request from 198.51.100.2"),
		f("clock-skew", "info", detect.StatusSignal, "key_A", "", 4*time.Hour, "client clock 400 s ahead"),
		// Named by fingerprint only (the gateway did not know the id).
		f("outside-allowlist-rejected", "low", detect.StatusSignal, "bbbbbbbbbbbbbbbb", "bbbbbbbbbbbbbbbb", 2*time.Hour, "B rejected from 198.51.100.3"),
		f("clock-skew", "info", detect.StatusSuppressed, "key_B", "", 90*time.Minute, "suppressed signal"),
		// Outside the period.
		f("stale-key", "low", detect.StatusSignal, "key_C", "", 30*time.Hour, "before the period"),
		f("outside-allowlist", "critical", detect.StatusNew, "key_C", "", 25*time.Hour, "before the period"),
		// About no key: counted in the totals only.
		f("auth-failure-burst-low", "low", detect.StatusSignal, "", "", 6*time.Hour, "21 failures from 192.0.2.9"),
	}); err != nil {
		t.Fatal(err)
	}

	rep, err := summary.NewBuilder(conn, db, reg).Build(ctx, summary.Options{Period: "24h", To: to})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]summary.KeySummary{}
	for _, k := range rep.Keys {
		got[k.KeyID] = k
	}
	if len(got) != 3 {
		t.Fatalf("keys %v, want key_A, key_B, key_C", slices.Collect(maps.Keys(got)))
	}
	a, b, c := got["key_A"], got["key_B"], got["key_C"]
	wantA := []summary.SignalRef{
		{RuleID: "outside-allowlist-rejected", Count: 2, Severity: "low", Summary: "one rejected request from 198.51.100.2", Latest: to.Add(-time.Hour)},
		{RuleID: "clock-skew", Count: 1, Severity: "info", Summary: "client clock 400 s ahead", Latest: to.Add(-4 * time.Hour)},
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"key_A open findings", a.OpenFindings, []summary.FindingRef{{RuleID: "outside-allowlist", Severity: "critical", Summary: "A used from 203.0.113.9", EvalTime: to.Add(-3 * time.Hour)}}},
		{"key_A signals", a.Signals, wantA},
		{"key_A flags", a.Flags, []string{summary.FlagOpenFindings, summary.FlagSignals}},
		{"key_B open findings", len(b.OpenFindings), 0},
		{"key_B signals (by fingerprint)", b.Signals, []summary.SignalRef{{RuleID: "outside-allowlist-rejected", Count: 1, Severity: "low", Summary: "B rejected from 198.51.100.3", Latest: to.Add(-2 * time.Hour)}}},
		{"key_B flags", b.Flags, []string{summary.FlagSignals}},
		{"key_C nothing in the period", [2]int{len(c.OpenFindings), len(c.Signals)}, [2]int{0, 0}},
		{"key_C flags", len(c.Flags), 0},
		{"totals by rule", rep.Totals.Signals, map[string]uint64{"outside-allowlist-rejected": 3, "clock-skew": 1, "auth-failure-burst-low": 1}},
		{"keys with signals", rep.Totals.SignalKeys, 2},
		{"order: findings before signals only", []string{rep.Keys[0].KeyID, rep.Keys[1].KeyID, rep.Keys[2].KeyID}, []string{"key_A", "key_B", "key_C"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %+v, want %+v", tt.name, tt.got, tt.want)
		}
	}
	if _, ok := got["bbbbbbbbbbbbbbbb"]; ok {
		t.Error("a finding's fingerprint listed apart from its key")
	}

	// One key: its findings under either identity, nothing about no key.
	one, err := summary.NewBuilder(conn, db, reg).Build(ctx, summary.Options{Period: "24h", To: to, KeyID: "key_B"})
	if err != nil || len(one.Keys) != 1 {
		t.Fatalf("--key key_B: %v, %+v", err, one)
	}
	if !reflect.DeepEqual(one.Keys[0].Signals, b.Signals) || !reflect.DeepEqual(one.Totals.Signals, map[string]uint64{"outside-allowlist-rejected": 1}) {
		t.Errorf("--key key_B: signals %+v, totals %v", one.Keys[0].Signals, one.Totals.Signals)
	}

	// The digest has its own section, and no suppressed text anywhere.
	d := summary.Digest(rep, 5)
	for _, want := range []string{"*Signals (not alerted)*", "outside-allowlist-rejected — 3", "auth-failure-burst-low — 1", "bk_live_AAAA…0001 — 3 signals"} {
		if !strings.Contains(d, want) {
			t.Errorf("digest lacks %q:\n%s", want, d)
		}
	}
	for _, format := range summary.Formats() {
		var buf bytes.Buffer
		if err := summary.Render(&buf, rep, format); err != nil {
			t.Fatal(err)
		}
		out := buf.String() + d
		if strings.Contains(out, "suppressed") || strings.Contains(out, "before the period") {
			t.Errorf("%s shows a suppressed finding or one outside the period", format)
		}
		if !strings.Contains(buf.String(), "one rejected request from 198.51.100.2") {
			t.Errorf("%s lacks the latest signal's summary", format)
		}
	}
}
