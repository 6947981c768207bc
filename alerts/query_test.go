package alerts_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

var qEval = time.Date(2026, 11, 27, 12, 6, 0, 0, time.UTC)

func qFinding(typ string, group map[string]string) detect.Finding {
	f := detect.Finding{RuleID: "r", RuleType: typ, Group: group, KeyID: group["key_id"], ClientIP: group["client_ip"],
		EvalTime: qEval, WindowStart: qEval.Add(-6 * time.Minute), WindowEnd: qEval.Add(-time.Minute)}
	return f
}

func investigateCases() []struct {
	name string
	rule *rules.Rule
	fs   []detect.Finding
	want []string
	not  []string
} {
	dur := func(d time.Duration) rules.Duration { return rules.Duration(d) }
	fp := func(f detect.Finding, fp string) detect.Finding { f.KeyFingerprint = fp; return f }
	outside := qFinding(rules.TypeIPAllowlist, map[string]string{"key_id": "key_01"})
	outside.KeyFingerprint, outside.ClientIP = "0123456789abcdef", "203.0.113.7"
	outside.Evidence = detect.Evidence{TopClientIPs: []string{"203.0.113.7", "198.51.100.9"}, Details: map[string]any{"allowed_cidrs": []string{"10.0.0.0/8"}}}
	spike := qFinding(rules.TypeSpike, map[string]string{"key_id": "key_01"})
	spike.WindowStart, spike.WindowEnd = qEval.Add(-3*time.Hour).Truncate(time.Hour), qEval.Truncate(time.Hour)
	dormant := qFinding(rules.TypeDormant, map[string]string{"key_id": "key_01"})
	dormant.WindowStart, dormant.WindowEnd = qEval.Add(-90*time.Minute), qEval.Add(-30*time.Minute) // not aligned: widened
	sqlF := qFinding(rules.TypeSQL, map[string]string{"group": "key_01"})
	hasKey := rules.Filter{{Field: "has_key", Op: "eq", Values: []string{"true"}}}
	return []struct {
		name string
		rule *rules.Rule
		fs   []detect.Finding
		want []string
		not  []string
	}{
		{"threshold by key, both identities",
			&rules.Rule{Type: rules.TypeThreshold, Filter: rules.Filter{{Field: "error_code", Op: "eq", Values: []string{"invalid_signature"}}}},
			[]detect.Finding{fp(qFinding(rules.TypeThreshold, map[string]string{"key_id": "key_01"}), "0123456789abcdef"), qFinding(rules.TypeThreshold, map[string]string{"key_id": "key_02"})},
			[]string{"ts >= toDateTime('2026-11-27 12:00:00', 'UTC') AND ts < toDateTime('2026-11-27 12:05:00', 'UTC')",
				"error_code = 'invalid_signature'", "key_id IN ('key_01', '0123456789abcdef', 'key_02')"}, nil},
		{"threshold by key and path",
			&rules.Rule{Type: rules.TypeThreshold},
			[]detect.Finding{qFinding(rules.TypeThreshold, map[string]string{"key_id": "key_01", "path": "/v1/orders", "status": "401"}),
				qFinding(rules.TypeThreshold, map[string]string{"key_id": "key_02", "path": "/v1/o'x", "status": "403"})},
			[]string{"((key_id IN ('key_01') AND path IN ('/v1/orders') AND status IN (401))\n    OR (key_id IN ('key_02') AND path IN ('/v1/o\\'x') AND status IN (403)))"}, nil},
		{"threshold without groups",
			&rules.Rule{Type: rules.TypeThreshold}, []detect.Finding{qFinding(rules.TypeThreshold, map[string]string{})},
			[]string{"WHERE ts >= "}, []string{"key_id IN", " IN ("}},
		{"new_value: field value over the lookback",
			&rules.Rule{Type: rules.TypeNewValue, Field: "client_net", Lookback: dur(30 * 24 * time.Hour), Filter: hasKey},
			[]detect.Finding{fp(qFinding(rules.TypeNewValue, map[string]string{"key_id": "key_01", "client_net": "203.0.113.0/24"}), "0123456789abcdef")},
			[]string{"ts >= toDateTime('2026-10-28 12:00:00', 'UTC') AND ts < toDateTime('2026-11-27 12:05:00', 'UTC')",
				"(key_id != '') = 1", "client_net IN ('203.0.113.0/24') AND key_id IN ('key_01', '0123456789abcdef')"}, nil},
		{"sql: the rule's query narrowed to the groups",
			&rules.Rule{Type: rules.TypeSQL, Query: "SELECT key_id AS group, count() AS count FROM {db}.access_log WHERE ts >= {from} AND ts < {to} GROUP BY key_id;"},
			[]detect.Finding{sqlF},
			[]string{"SELECT *\nFROM (\nSELECT key_id AS group, count() AS count FROM db.access_log WHERE ts >= toDateTime('2026-11-27 12:00:00', 'UTC') AND ts < toDateTime('2026-11-27 12:05:00', 'UTC') GROUP BY key_id\n)\nWHERE `group` IN ('key_01')"},
			[]string{"{from}", "{db}", ";"}},
		{"ip_allowlist outside: key and outside IPs",
			&rules.Rule{Type: rules.TypeIPAllowlist, Mode: "outside"}, []detect.Finding{outside},
			[]string{"key_id IN ('key_01', '0123456789abcdef') AND client_ip IN ('203.0.113.7', '198.51.100.9')", "ts >= toDateTime('2026-11-27 12:00:00', 'UTC')"}, nil},
		{"ip_allowlist outside, rule unknown",
			nil, []detect.Finding{outside},
			[]string{"client_ip IN ('203.0.113.7', '198.51.100.9')"}, nil},
		{"spike: whole hours",
			&rules.Rule{Type: rules.TypeSpike}, []detect.Finding{fp(spike, "0123456789abcdef")},
			[]string{"ts >= toDateTime('2026-11-27 09:00:00', 'UTC') AND ts < toDateTime('2026-11-27 12:00:00', 'UTC')", "key_id IN ('key_01', '0123456789abcdef')"}, nil},
		{"dormant: whole hours",
			&rules.Rule{Type: rules.TypeDormant}, []detect.Finding{dormant},
			[]string{"ts >= toDateTime('2026-11-27 10:00:00', 'UTC') AND ts < toDateTime('2026-11-27 12:00:00', 'UTC')"}, nil},
		{"key_rotation: the registry entry and 7 days of use",
			&rules.Rule{Type: rules.TypeKeyRotation}, []detect.Finding{fp(qFinding(rules.TypeKeyRotation, map[string]string{"key_id": "key_01"}), "0123456789abcdef")},
			[]string{"FROM db.keys FINAL", "hour >= toDateTime('2026-11-20 12:00:00', 'UTC') AND hour < toDateTime('2026-11-27 12:05:00', 'UTC')", "k.key_id IN ('key_01', '0123456789abcdef')"}, []string{"access_log"}},
		{"stale_key: the registry entry (a stale key has no traffic)",
			&rules.Rule{Type: rules.TypeStaleKey}, []detect.Finding{qFinding(rules.TypeStaleKey, map[string]string{"key_id": "key_01"})},
			[]string{"FROM db.keys FINAL", "k.key_id IN ('key_01')"}, []string{"access_log"}},
		{"ip_allowlist missing: the registry entry",
			&rules.Rule{Type: rules.TypeIPAllowlist, Mode: "missing"}, []detect.Finding{qFinding(rules.TypeIPAllowlist, map[string]string{"key_id": "key_01"})},
			[]string{"FROM db.keys FINAL", "k.key_id IN ('key_01')"}, []string{"client_ip IN"}},
	}
}

func TestInvestigateQuery(t *testing.T) {
	for _, tt := range investigateCases() {
		t.Run(tt.name, func(t *testing.T) {
			q := alerts.InvestigateQuery("db", tt.rule, tt.fs)
			for _, w := range tt.want {
				if !strings.Contains(q, w) {
					t.Errorf("query lacks %q:\n%s", w, q)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(q, n) {
					t.Errorf("query contains %q:\n%s", n, q)
				}
			}
			if q2 := alerts.InvestigateQuery("db", tt.rule, tt.fs); q2 != q {
				t.Error("not deterministic")
			}
		})
	}
	if alerts.InvestigateQuery("db", nil, nil) != "" {
		t.Error("a query without findings")
	}
}

// TestInvestigateQueryRuns runs every query on ClickHouse (empty tables):
// each must parse and run.
func TestInvestigateQueryRuns(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	for _, tt := range investigateCases() {
		q := alerts.InvestigateQuery(db, tt.rule, tt.fs)
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			t.Errorf("%s: %v\n%s", tt.name, err, q)
			continue
		}
		rows.Close()
	}
}
