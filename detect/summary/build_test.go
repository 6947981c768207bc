package summary_test

import (
	"context"
	"fmt"
	"os"
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
