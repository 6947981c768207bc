// Package cluster holds the live tests of auditwatch's ClickHouse cluster
// mode (clickhouse.cluster, docs/cluster.md) that span packages: the default
// rule pack's cases run against scratch databases created ON CLUSTER on the
// two-server test cluster of deploy/services/cluster.sh.
package cluster
