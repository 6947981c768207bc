// Package metricnames lists the Prometheus metrics auditwatch registers, so
// that tests can check every metric named by an alerting rule or a
// dashboard panel exists in the code.
package metricnames

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/leader"
	"github.com/auditwatch/auditwatch/ingest"
)

// Names is a set of metric names; a prometheus.Registerer that adds the
// names of the metrics registered with it (and the series names of
// histograms: _bucket, _sum, _count).
type Names map[string]bool

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Register adds c's metric names.
func (n Names) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			n[m[1]] = true
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				n[m[1]+s] = true
			}
		}
	}
	return nil
}

// MustRegister adds the names of cs.
func (n Names) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = n.Register(c)
	}
}

// Unregister does nothing.
func (n Names) Unregister(prometheus.Collector) bool { return true }

// Registered returns the names of every metric auditwatch's packages
// register.
func Registered() Names {
	n := Names{}
	alerts.NewMetrics(n)
	detect.NewMetrics(n)
	leader.NewMetrics(n)
	ingest.NewMetrics(n)
	return n
}

// Ref matches a reference to an auditwatch metric in a PromQL expression.
var Ref = regexp.MustCompile(`\bauditwatch_[a-z0-9_]+\b`)
