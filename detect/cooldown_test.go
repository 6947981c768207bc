package detect

import (
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

func TestCooldown(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cd := rules.Duration(time.Hour)
	r := &rules.Rule{ID: "r", Cooldown: &cd}
	f := func(min int, sev string) Finding {
		return Finding{GroupKey: "key_id=k", Severity: sev, EvalTime: t0.Add(time.Duration(min) * time.Minute)}
	}
	type want struct{ status, from string }
	tests := []struct {
		name  string
		prior map[string]Prior
		fs    []Finding
		want  []want
	}{
		{"first high alerts, repeat suppressed", nil,
			[]Finding{f(0, "high"), f(5, "high")}, []want{{StatusNew, ""}, {StatusSuppressed, ""}}},
		{"low is a signal, its repeat suppressed", nil,
			[]Finding{f(0, "low"), f(5, "low")}, []want{{StatusSignal, ""}, {StatusSuppressed, ""}}},
		{"a critical finding after a low signal breaks the cooldown", nil,
			[]Finding{f(0, "low"), f(20, "critical")}, []want{{StatusSignal, ""}, {StatusNew, "low"}}},
		{"escalation high to critical alerts at once, then critical repeats are suppressed", nil,
			[]Finding{f(0, "high"), f(20, "critical"), f(25, "critical"), f(30, "high")},
			[]want{{StatusNew, ""}, {StatusNew, "high"}, {StatusSuppressed, ""}, {StatusSuppressed, ""}}},
		{"a lower severity within the cooldown is suppressed", nil,
			[]Finding{f(0, "critical"), f(10, "medium")}, []want{{StatusNew, ""}, {StatusSuppressed, ""}}},
		{"after the cooldown it alerts again", nil,
			[]Finding{f(0, "high"), f(61, "high")}, []want{{StatusNew, ""}, {StatusNew, ""}}},
		{"stored prior (even one after the finding, as for late data) suppresses the same severity",
			map[string]Prior{"key_id=k": {At: t0.Add(10 * time.Minute), Severity: "high"}},
			[]Finding{f(0, "high")}, []want{{StatusSuppressed, ""}}},
		{"stored prior of lower severity is escalated past",
			map[string]Prior{"key_id=k": {At: t0.Add(-10 * time.Minute), Severity: "medium"}},
			[]Finding{f(0, "high")}, []want{{StatusNew, "medium"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prior := tt.prior
			if prior == nil {
				prior = map[string]Prior{}
			}
			Cooldown(r, tt.fs, prior)
			for i, w := range tt.want {
				if got := tt.fs[i]; got.Status != w.status || got.EscalatedFrom != w.from {
					t.Errorf("finding %d (%s at +%s): status %s escalated_from %q, want %s %q", i, got.Severity, got.EvalTime.Sub(t0), got.Status, got.EscalatedFrom, w.status, w.from)
				}
			}
		})
	}
}

func TestComputeWatermark(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ago := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Second) }
	idle := 30 * time.Second
	tests := []struct {
		name         string
		ps           []partitionProgress
		want         time.Time
		active, idle int
	}{
		{"the slowest active partition holds the watermark",
			[]partitionProgress{{0, true, ago(1), ago(1)}, {1, false, ago(40), ago(2)}}, ago(40), 2, 0},
		{"a caught-up partition not written for idle_timeout is idle",
			[]partitionProgress{{0, true, ago(1), ago(1)}, {1, true, ago(600), ago(600)}}, ago(1), 1, 1},
		{"a partition left behind holds it however old",
			[]partitionProgress{{0, true, ago(1), ago(1)}, {1, false, ago(600), ago(600)}}, ago(600), 2, 0},
		{"only an idle ingester's heartbeat: it moves the watermark",
			[]partitionProgress{{-1, true, ago(1), ago(1)}, {3, true, ago(900), ago(900)}}, ago(1), 0, 1},
		{"no live ingester: the last thing known",
			[]partitionProgress{{0, true, ago(300), ago(300)}, {1, true, ago(200), ago(200)}}, ago(200), 0, 2},
		{"nothing known", nil, time.Time{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := computeWatermark(tt.ps, now, idle)
			if !w.At.Equal(tt.want) || w.Active != tt.active || w.Idle != tt.idle {
				t.Fatalf("got %+v, want at %s, %d active, %d idle", w, tt.want, tt.active, tt.idle)
			}
		})
	}
}

func TestNextTick(t *testing.T) {
	rs, errs := rules.Parse("r.yaml", []byte("rules:\n  - {id: r, name: R, severity: high, schedule: \"@every 5s\", type: threshold, group_by: [key_id], window: 5m, threshold: 1}\n"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rule := rs[0]
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s := NewScheduler("", nil, nil, nil)
	tests := []struct {
		name    string
		cursor  time.Time
		want    time.Time
		trigger string
		dropped int
	}{
		{"up to date: the next tick, in the future", now, now.Add(5 * time.Second), TriggerSchedule, 0},
		{"the tick due now is a schedule run", now.Add(-5 * time.Second), now, TriggerSchedule, 0},
		{"one behind: replay at full resolution", now.Add(-10 * time.Second), now.Add(-5 * time.Second), TriggerReplay, 0},
		{"far behind: steps by half the window", now.Add(-time.Hour), now.Add(-time.Hour + 150*time.Second), TriggerReplay, 0},
		{"beyond the lookback: dropped ticks counted", now.Add(-25 * time.Hour), now.Add(-24*time.Hour + 150*time.Second), TriggerReplay, 719},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, trig, dropped := s.nextTick(rule, tt.cursor, now)
			if !got.Equal(tt.want) || trig != tt.trigger || dropped != tt.dropped {
				t.Fatalf("got %s %s %d, want %s %s %d", got, trig, dropped, tt.want, tt.trigger, tt.dropped)
			}
		})
	}
}

func TestEvalLogAffected(t *testing.T) {
	cd := rules.Duration(0)
	r := &rules.Rule{ID: "r", Window: rules.Duration(time.Minute), QueryDelay: &cd}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var h evalLog
	for i := 0; i <= 6; i++ { // ticks every 20s, evaluated 1s after each
		tick := t0.Add(time.Duration(i*20) * time.Second)
		h.add(tick, tick.Add(time.Second))
	}
	got := map[time.Time]bool{}
	// A row of second t0+30s written at t0+75s: windows (t−60s, t] ∋ 30s
	// are ticks 40s, 60s, 80s; only 40s and 60s were evaluated before.
	h.affected(r, t0.Add(30*time.Second), t0.Add(75*time.Second), got)
	if len(got) != 2 || !got[t0.Add(40*time.Second)] || !got[t0.Add(60*time.Second)] {
		t.Fatalf("affected ticks %v", got)
	}
	h.prune(t0.Add(50 * time.Second))
	if len(h.ticks) != 4 || !h.ticks[0].Equal(t0.Add(60*time.Second)) {
		t.Fatalf("prune left %v", h.ticks)
	}
	if s := sample(h.ticks, 2); len(s) != 2 || !s[0].Equal(h.ticks[0]) || !s[1].Equal(h.ticks[3]) {
		t.Fatalf("sample %v", s)
	}
}
