package chsink

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// distributedSync makes an insert into a Distributed table return only after
// every shard it spans has the rows (insert_distributed_sync=1): without it,
// a Distributed table queues the rows on the server that received them and
// sends them later, so an acknowledged batch would not yet be readable
// (Stored would miss it) and would be lost with that server's disk.
func distributedSync(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// SetCluster tells the sink that access_log and ingest_errors are the
// Distributed tables of a ClickHouse cluster (docs/cluster.md): its inserts
// then wait until the shards have the rows. Each row goes to the shard
// cityHash64(request_id) picks (the tables' sharding key), so the duplicates
// a redelivery writes meet on one shard, where ReplacingMergeTree and FINAL
// fold them, and Stored reads through the Distributed tables.
func (s *Sink) SetCluster(on bool) { s.cluster = on }

// SetCluster makes the writer's inserts into the Distributed ingest_progress
// table of a cluster wait until the shard has the rows.
func (w *ProgressWriter) SetCluster(on bool) { w.cluster = on }
