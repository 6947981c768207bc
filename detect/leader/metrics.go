package leader

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the leader election's metrics.
type Metrics struct {
	leader  prometheus.Gauge
	changes prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "auditwatch", Subsystem: "detect", Name: "leader",
			Help: "1 while this detect leads (evaluates rules and delivers alerts), 0 while it stands by (detect.ha)."}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "auditwatch", Subsystem: "detect", Name: "leader_changes_total",
			Help: "Times this detect gained or lost leadership (each term counts twice: its start and its end)."}),
	}
	if reg != nil {
		reg.MustRegister(m.leader, m.changes)
	}
	return m
}
