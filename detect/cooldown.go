package detect

import (
	"slices"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// Prior is what was already reported for one rule and group within the
// cooldown: the latest evaluation time with a reported finding (status new or
// signal) and the highest severity reported.
type Prior struct {
	At       time.Time
	Severity string
}

// SeverityRank orders severities: info 0 … critical 4; unknown ones rank -1.
func SeverityRank(s string) int { return slices.Index(rules.Severities, s) }

// alertRank is the lowest severity that alerts: lower ones are signals.
var alertRank = SeverityRank("medium")

// Cooldown sets the status of each finding. A finding whose group has
// nothing reported within the rule's cooldown is reported: status new when
// its severity is medium or above, signal (recorded for reviews and digests,
// never alerted on its own) for info and low. Within the cooldown a finding
// is suppressed — unless it is more severe than everything reported so far
// for its group, which breaks the cooldown at once (EscalatedFrom says from
// what). prior maps group keys to what was reported; it is updated with the
// findings reported. Findings are taken in order, so pass them sorted by
// evaluation time.
func Cooldown(r *rules.Rule, fs []Finding, prior map[string]Prior) (alerts, signals, suppressed int) {
	cd := r.CooldownOrDefault().D()
	for i := range fs {
		f := &fs[i]
		p, ok := prior[f.GroupKey]
		within := ok && absDuration(f.EvalTime.Sub(p.At)) < cd
		rank := SeverityRank(f.Severity)
		if within && rank <= SeverityRank(p.Severity) {
			f.Status = StatusSuppressed
			suppressed++
			continue
		}
		if within {
			f.EscalatedFrom = p.Severity
		}
		if rank >= alertRank {
			f.Status = StatusNew
			alerts++
		} else {
			f.Status = StatusSignal
			signals++
		}
		prior[f.GroupKey] = Prior{At: f.EvalTime, Severity: f.Severity}
	}
	return alerts, signals, suppressed
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
