package detect

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/auditwatch/auditwatch/rules"
)

// CapGroupField is the group field of the finding that says a run produced
// more findings than the cap (group_key findings_cap=<cap>).
const CapGroupField = "findings_cap"

// capSeverity is the least severity of a cap finding: it must alert
// (info and low are signals, never alerted).
const capSeverity = "high"

// capFindings keeps the max most severe of fs (by severity, then value,
// then group key, so the choice is deterministic) and appends one finding
// saying the cap was hit: how many were produced, the cap, how many were
// dropped. Its severity is the highest of the findings produced, at least
// high. It returns fs unchanged, and 0, when len(fs) ≤ max or max < 0.
func capFindings(r *rules.Rule, w Window, fs []Finding, maxFindings int) ([]Finding, int) {
	if maxFindings < 0 || len(fs) <= maxFindings {
		return fs, 0
	}
	sorted := slices.Clone(fs)
	slices.SortStableFunc(sorted, func(a, b Finding) int {
		if c := cmp.Compare(SeverityRank(b.Severity), SeverityRank(a.Severity)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Value, a.Value); c != 0 {
			return c
		}
		return cmp.Compare(a.GroupKey, b.GroupKey)
	})
	sev := capSeverity
	if top := sorted[0].Severity; SeverityRank(top) > SeverityRank(sev) {
		sev = top
	}
	produced, dropped := len(fs), len(fs)-maxFindings
	out := sorted[:maxFindings:maxFindings]
	f := newFinding(r, w, map[string]string{CapGroupField: strconv.Itoa(maxFindings)}, nil)
	f.KeyID, f.ClientIP = "", ""
	f.Severity = sev
	f.Value, f.Threshold = float64(produced), float64(maxFindings)
	f.Summary = fmt.Sprintf("%s: %d findings in one run, over the cap of %d (detect.sql_rules.max_findings): the %d most severe were stored, %d dropped — check the rule and the traffic",
		r.Name, produced, maxFindings, maxFindings, dropped)
	f.Evidence = Evidence{Details: map[string]any{"rule_id": r.ID, "produced": produced, "cap": maxFindings, "dropped": dropped}}
	return append(out, f), dropped
}
