// Package ingest consumes gateway access-log events from Kafka and writes
// them to ClickHouse with nothing lost.
//
// The Ingester runs on the consumer loop of ingest/consume (shared with the
// key-lifecycle consumer): it reads with a consumer group, decodes each
// message (ingest/event), and collects rows and dead letters into a batch
// that is flushed by size or age. A separate writer goroutine stores the
// batch through a Sink, retrying with backoff what may pass, and only then
// commits the batch's last offset per partition. A message read again (after
// a crash, a failed commit or a rebalance) is looked up and skipped when it
// is already stored, so each message is stored once; rows ClickHouse refuses
// are isolated by splitting the batch and dead-lettered.
//
// At most two batches exist at a time (one filling, one being written), so a
// backlog or a ClickHouse outage never grows memory: the reader simply stops
// fetching until the writer catches up.
//
// With a ProgressWriter the ingester also reports, per partition, what it
// has durably written (ingest_progress: event-time watermarks for detect):
// one row per partition after each batch is stored, and heartbeats while
// nothing is in flight. A goroutine of its own writes these rows, so a slow
// or failing progress insert never holds up the data.
package ingest
