package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditwatch/auditwatch/ingest/event"
)

// Metrics are the ingester's Prometheus metrics. Labels never carry keys or
// other request data: only topic, partition and a fixed reason class.
type Metrics struct {
	messagesIn   prometheus.Counter
	bytesIn      prometheus.Counter
	rowsOut      prometheus.Counter
	deadOut      prometheus.Counter
	deadLetters  *prometheus.CounterVec
	writeErrors  prometheus.Counter
	fetchErrors  prometheus.Counter
	commits      prometheus.Counter
	commitErrors prometheus.Counter
	lastCommit   prometheus.Gauge
	lag          *prometheus.GaugeVec
	writeLatency prometheus.Histogram
	batchRows    prometheus.Histogram
	batchAge     prometheus.Histogram

	progressErrors prometheus.Counter
	completeTo     *prometheus.GaugeVec

	splits       prometheus.Counter
	rejectedRows prometheus.Counter
	deadRefused  prometheus.Counter
	redelivered  prometheus.Counter
	storedChecks prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "auditwatch", "ingest"
	m := &Metrics{
		messagesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "messages_read_total",
			Help: "Kafka messages read."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "message_bytes_read_total",
			Help: "Bytes of Kafka message values read."}),
		rowsOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_written_total",
			Help: "Rows written to access_log (a redelivered message counts again)."}),
		deadOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_letters_written_total",
			Help: "Dead letters written to ingest_errors."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_letters_total",
			Help: "Messages rejected by the decoder, by reason."}, []string{"reason"}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "write_errors_total",
			Help: "Failed batch writes to ClickHouse (each is retried)."}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fetch_errors_total",
			Help: "Errors fetching from Kafka."}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "commits_total",
			Help: "Offset commits after a written batch."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "commit_errors_total",
			Help: "Failed offset commits."}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_commit_timestamp_seconds",
			Help: "Unix time of the last successful offset commit."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "consumer_lag_messages",
			Help: "Messages behind the partition's high-water mark at the last fetch."}, []string{"topic", "partition"}),
		writeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_write_seconds",
			Help: "Time to write one batch, retries included.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_messages",
			Help: "Messages per written batch.", Buckets: prometheus.ExponentialBuckets(10, 4, 9)}),
		batchAge: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_age_seconds",
			Help: "Age of a batch when handed to the writer.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		progressErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "progress_write_errors_total",
			Help: "Failed inserts into ingest_progress (retried with the next batch or heartbeat)."}),
		completeTo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "partition_complete_to_seconds",
			Help: "Unix time before which every event of the partition is stored, as last written to ingest_progress."}, []string{"topic", "partition"}),
		splits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "write_splits_total",
			Help: "Inserts split in two (or by partition) to isolate rows ClickHouse refused."}),
		rejectedRows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rejected_rows_total",
			Help: "Rows ClickHouse refused, dead-lettered in ingest_errors with reason rejected."}),
		deadRefused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_letters_refused_total",
			Help: "Dead letters ClickHouse refused to store (logged with topic, partition and offset, then dropped)."}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redelivered_skipped_total",
			Help: "Messages read again (redelivery after a restart, rebalance or failed commit) and skipped because they were already stored."}),
		storedChecks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "stored_checks_total",
			Help: "Queries for already-stored offsets, made after a redelivery or a write whose outcome was unknown."}),
	}
	m.deadLetters.WithLabelValues(ReasonRejected)
	for _, r := range event.Reasons {
		m.deadLetters.WithLabelValues(string(r))
	}
	if reg != nil {
		reg.MustRegister(m.messagesIn, m.bytesIn, m.rowsOut, m.deadOut, m.deadLetters, m.writeErrors, m.fetchErrors,
			m.commits, m.commitErrors, m.lastCommit, m.lag, m.writeLatency, m.batchRows, m.batchAge,
			m.progressErrors, m.completeTo, m.splits, m.rejectedRows, m.deadRefused, m.redelivered, m.storedChecks)
	}
	return m
}
