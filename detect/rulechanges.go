package detect

import (
	"log/slog"
	"reflect"
	"sort"

	"github.com/auditwatch/auditwatch/rules"
)

// RuleChange is how one rule differs between two loaded rule sets.
type RuleChange struct {
	RuleID           string
	File             string
	OldHash, NewHash string // of the rule file; "" when the rule was added or removed
	// ExceptionsChanged and OverridesChanged say the rule's exceptions or
	// threshold overrides differ: the edits that can blind detection.
	ExceptionsChanged bool
	OverridesChanged  bool
	// Disabled is true when the rule was enabled and is no longer (or was
	// removed).
	Disabled bool
}

// RuleChanges lists the rules of next whose file hash differs from prev, and
// the rules of prev that next no longer has, sorted by rule id. A rule whose
// file changed is listed even when the rule itself did not (another rule of
// the file did): the hash is what rule_runs records.
func RuleChanges(prev, next *rules.Set) []RuleChange {
	if prev == nil || next == nil {
		return nil
	}
	var out []RuleChange
	for _, n := range next.Rules {
		o := prev.Get(n.ID)
		if o == nil {
			out = append(out, RuleChange{RuleID: n.ID, File: n.File, NewHash: n.Hash})
			continue
		}
		if o.Hash == n.Hash && o.File == n.File {
			continue
		}
		out = append(out, RuleChange{RuleID: n.ID, File: n.File, OldHash: o.Hash, NewHash: n.Hash,
			ExceptionsChanged: !reflect.DeepEqual(o.Exceptions, n.Exceptions),
			OverridesChanged:  !reflect.DeepEqual(o.Overrides, n.Overrides),
			Disabled:          o.IsEnabled() && !n.IsEnabled()})
	}
	for _, o := range prev.Rules {
		if next.Get(o.ID) == nil {
			out = append(out, RuleChange{RuleID: o.ID, File: o.File, OldHash: o.Hash, Disabled: o.IsEnabled()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RuleID < out[j].RuleID })
	return out
}

// logRuleChanges logs each change at WARN (an added rule at INFO): a change
// of the rules directory, such as a new exception, can hide findings, and
// rule_runs.rule_hash alone says only that something changed.
func logRuleChanges(log *slog.Logger, changes []RuleChange) {
	for _, c := range changes {
		switch {
		case c.OldHash == "":
			log.Info("rule added", "rule", c.RuleID, "file", c.File, "new_hash", c.NewHash)
		case c.NewHash == "":
			log.Warn("rule removed", "rule", c.RuleID, "file", c.File, "old_hash", c.OldHash)
		default:
			log.Warn("rule file changed", "rule", c.RuleID, "file", c.File, "old_hash", c.OldHash, "new_hash", c.NewHash,
				"exceptions_changed", c.ExceptionsChanged, "overrides_changed", c.OverridesChanged, "disabled", c.Disabled)
		}
	}
}
