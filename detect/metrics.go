package detect

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the detector's Prometheus metrics. Labels carry rule ids and
// severities only.
type Metrics struct {
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	findings    *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	rulesLoaded prometheus.Gauge
	waited      *prometheus.HistogramVec
	incomplete  *prometheus.CounterVec
	replayed    *prometheus.CounterVec
	late        *prometheus.CounterVec
	dropped     *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "auditwatch", "detect"
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rule_runs_total",
			Help: "Rule evaluations by outcome (success, error, panic)."}, []string{"rule", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "rule_run_seconds",
			Help: "Time to evaluate and record a rule.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"rule"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "findings_total",
			Help: "Findings stored, by rule, severity and status (new, signal or suppressed)."}, []string{"rule", "severity", "status"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rule_reloads_total",
			Help: "Rule file reloads by result (a failure keeps the previous rules)."}, []string{"result"}),
		rulesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "rules_enabled",
			Help: "Enabled rules in force."}),
		waited: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "watermark_wait_seconds",
			Help:    "Time from a window's end until the ingest watermark passed it and the window was evaluated.",
			Buckets: []float64{0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300}}, []string{"rule"}),
		incomplete: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "incomplete_runs_total",
			Help: "Windows evaluated before the ingest watermark passed their end (gave up after max_wait)."}, []string{"rule"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replayed_ticks_total",
			Help: "Ticks evaluated after they were missed (detect down, or the rule behind)."}, []string{"rule"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "late_reevaluations_total",
			Help: "Windows evaluated again because rows arrived after their first evaluation."}, []string{"rule"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "ticks_beyond_lookback_total",
			Help: "Missed ticks not evaluated because they are older than detect.replay_lookback."}, []string{"rule"}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.duration, m.findings, m.reloads, m.rulesLoaded, m.waited, m.incomplete, m.replayed, m.late, m.dropped)
	}
	return m
}
