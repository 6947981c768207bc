package detect_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/deploy/testenv/benchdata"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/rules"
)

// TestAnomalyRulesOnGeneratedHistory is the evidence for the anomaly rules:
// 28 days of generated traffic (daily seasonality, noise, 50 keys) with a
// usage spike, an error-rate jump and a dormant key returning, replayed
// on their schedules through Backtest with the default pack's anomaly rules. It
// requires every injected anomaly to be found and fewer than one false
// finding per 100 key-days on the rest, and logs the figures.
func TestAnomalyRulesOnGeneratedHistory(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	const days = 28
	seed := int64(11)
	if v := os.Getenv("AUDITWATCH_ANOMALY_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	g := benchdata.Ingest(t, conn, db, gen.Config{Seed: seed, Start: start, Duration: days * 24 * time.Hour, Events: 500_000,
		Scenarios: []string{gen.ScenarioUsageSpike, gen.ScenarioErrorRateJump, gen.ScenarioDormantKeyReturns}})
	ks := keys.NewStore(conn, db)

	pack, err := rules.LoadDir(filepath.Join(testenv.RepoRoot(t), "rules", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	set := &rules.Set{}
	for _, id := range []string{"usage-spike", "error-rate-anomaly", "dormant-key-returns"} {
		set.Rules = append(set.Rules, pack.Get(id))
	}
	from, to := start.Add(24*time.Hour), start.Add(days*24*time.Hour)
	res, err := detect.Backtest(ctx, detect.NewEngine(conn, db, ks, quiet), set, detect.BacktestOptions{From: from, To: to, Keep: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var alerts []detect.Finding
	for _, r := range res {
		if r.Errors > 0 {
			t.Fatalf("rule %s: %d errors, first: %s", r.RuleID, r.Errors, r.FirstError)
		}
		alerts = append(alerts, r.Findings...)
	}
	incidents := g.Incidents()
	matched := make([]bool, len(alerts))
	for _, in := range incidents {
		found := ""
		for i, f := range alerts {
			if f.KeyID == in.KeyID && !f.EvalTime.Before(in.Start) && !f.EvalTime.After(in.End.Add(3*time.Hour)) {
				matched[i] = true
				if found != "" {
					found += ", "
				}
				found += f.RuleID + " at " + f.EvalTime.Format("01-02 15:04")
			}
		}
		t.Logf("%-20s key %s %s–%s: %s", in.Name, in.KeyID, in.Start.Format("01-02 15:04"), in.End.Format("15:04"), orNot(found))
		if found == "" {
			t.Errorf("incident %s on %s not found", in.Name, in.KeyID)
		}
	}
	activeKeys := testenv.Count(t, conn, "SELECT uniqExact(key_id) FROM "+db+".key_usage WHERE hour >= toDateTime(?) AND key_id IN (SELECT key_id FROM "+db+".keys FINAL)", uint32(from.Unix()))
	keyDays := float64(activeKeys) * to.Sub(from).Hours() / 24
	fp := 0
	for i, f := range alerts {
		if !matched[i] {
			fp++
			t.Logf("false finding: %s %s", f.EvalTime.Format("01-02 15:04"), f.Summary)
		}
	}
	rate := float64(fp) / keyDays * 100
	t.Logf("anomaly rules over %d days, %d active keys (%.0f key-days): %d alerts, %d on injected incidents, %d false (%.2f per 100 key-days)",
		days-1, activeKeys, keyDays, len(alerts), len(alerts)-fp, fp, rate)
	for _, r := range res {
		t.Logf("  %-20s %d evaluations, %d alerts, avg %.1f ms", r.RuleID, r.Evaluations, r.Alerts, float64(r.QueryTime.Milliseconds())/float64(max(r.Evaluations, 1)))
	}
	if rate >= 1 {
		t.Errorf("%.2f false findings per 100 key-days, want < 1", rate)
	}
}

func orNot(s string) string {
	if s == "" {
		return "NOT FOUND"
	}
	return "found by " + s
}
