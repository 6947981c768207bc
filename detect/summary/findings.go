package summary

import (
	"context"
	"sort"
	"strings"

	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
)

// maxOpenFindings bounds the alerted findings kept per key.
const maxOpenFindings = 20

// readFindings reads the findings of the period with status new or signal
// in one query and splits them in Go: alerted findings go to their key's
// OpenFindings (newest first), signals are counted per key and rule (with
// the latest summary) and in r.Totals.Signals. A finding names its key by
// registry id or by fingerprint (key_id or key_fingerprint); both fold into
// the registry id, as the usage does. Signals about no key (rules grouped by
// client address) count in the totals only, and only without a key filter.
func (b *Builder) readFindings(ctx context.Context, r *Report, o Options, byID map[string]*keys.Key, get func(string) *KeySummary) error {
	q := "SELECT " + detect.FindingColumns + " FROM " + b.db + ".findings FINAL WHERE status IN (?, ?) AND eval_time >= toDateTime(?) AND eval_time < toDateTime(?)"
	args := []any{detect.StatusNew, detect.StatusSignal, uint32(r.From.Unix()), uint32(r.To.Unix())}
	if o.KeyID != "" {
		ids := []string{o.KeyID}
		if k := byID[o.KeyID]; k != nil {
			ids = []string{k.ID}
			if k.Fingerprint != "" {
				ids = append(ids, k.Fingerprint)
			}
		}
		in := strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")
		q += " AND (key_id IN (" + in + ") OR key_fingerprint IN (" + in + "))"
		for range 2 {
			for _, id := range ids {
				args = append(args, id)
			}
		}
	} else {
		q += " AND (key_id != '' OR key_fingerprint != '' OR status = ?)"
		args = append(args, detect.StatusSignal)
	}
	q += " ORDER BY eval_time DESC, rule_id, group_key"
	signals := map[string]map[string]*SignalRef{} // key id → rule → signals
	err := b.each(ctx, q, args, func(sc scanner) error {
		f, err := detect.ScanFinding(sc)
		if err != nil {
			return err
		}
		id := findingKey(f, byID)
		if f.Status == detect.StatusSignal {
			r.Totals.Signals[f.RuleID]++
		}
		if id == "" {
			return nil
		}
		s := get(id)
		if f.Status == detect.StatusNew {
			if len(s.OpenFindings) < maxOpenFindings {
				s.OpenFindings = append(s.OpenFindings, FindingRef{RuleID: f.RuleID, Severity: f.Severity, Summary: f.Summary, EvalTime: f.EvalTime.UTC()})
			}
			return nil
		}
		if signals[s.KeyID] == nil {
			signals[s.KeyID] = map[string]*SignalRef{}
		}
		ref := signals[s.KeyID][f.RuleID]
		if ref == nil {
			// Rows come newest first: the first of a rule is its latest.
			ref = &SignalRef{RuleID: f.RuleID, Severity: f.Severity, Summary: f.Summary, Latest: f.EvalTime.UTC()}
			signals[s.KeyID][f.RuleID] = ref
		}
		ref.Count++
		return nil
	})
	if err != nil {
		return err
	}
	for id, byRule := range signals {
		s := get(id)
		for _, ref := range byRule {
			s.Signals = append(s.Signals, *ref)
		}
		sortSignals(s.Signals)
	}
	return nil
}

// findingKey returns the registry id of the key a finding is about: its
// key_id or key_fingerprint folded into the registry id, else whichever it
// has ("" for a finding about no key).
func findingKey(f detect.Finding, byID map[string]*keys.Key) string {
	for _, id := range []string{f.KeyID, f.KeyFingerprint} {
		if k := byID[id]; id != "" && k != nil {
			return k.ID
		}
	}
	if f.KeyID != "" {
		return f.KeyID
	}
	return f.KeyFingerprint
}

// sortSignals orders signals the most frequent first, then the latest, then
// by rule.
func sortSignals(sig []SignalRef) {
	sort.Slice(sig, func(i, j int) bool {
		a, c := sig[i], sig[j]
		if a.Count != c.Count {
			return a.Count > c.Count
		}
		if !a.Latest.Equal(c.Latest) {
			return a.Latest.After(c.Latest)
		}
		return a.RuleID < c.RuleID
	})
}
