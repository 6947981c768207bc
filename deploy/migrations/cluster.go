package migrations

import (
	"fmt"
	"regexp"
	"strings"
)

// LocalSuffix ends the name of the table holding a cluster server's share of
// a table's data; the table's own name is the Distributed table over them.
const LocalSuffix = "_local"

// shardingKeys is the sharding expression of each table's Distributed table:
// rows that ReplacingMergeTree must see together (same sorting key) hash to
// the same shard, so deduplication and FINAL work per shard. The rollups
// are written by their materialized views on the shard that received the
// access_log rows, never through the Distributed table; their key only
// matters for rows inserted by hand.
var shardingKeys = map[string]string{
	"access_log":       "cityHash64(request_id)",
	"ingest_errors":    "cityHash64(topic, partition, offset)",
	"keys":             "cityHash64(key_id)",
	"key_events":       "cityHash64(key_id)",
	"findings":         "cityHash64(rule_id, group_key)",
	"rule_runs":        "cityHash64(rule_id)",
	"alert_deliveries": "cityHash64(rule_id, group_key)",
	"silences":         "cityHash64(silence_id)",
	"alert_actions":    "cityHash64(action_id)",
	"key_ip_daily":     "cityHash64(key_id)",
	"key_usage_hourly": "cityHash64(key_id)",
	"key_usage":        "cityHash64(key_id)",
	"ingest_progress":  "cityHash64(topic, partition)",
}

// ShardingKey returns the sharding expression of table's Distributed table
// in cluster mode, and false for a table that has none.
func ShardingKey(table string) (string, bool) {
	k, ok := shardingKeys[table]
	return k, ok
}

// clusterFuncs returns the template functions that differ between a single
// server and a cluster. With cluster == "" each returns exactly the text the
// templates held before cluster support, so single-server output (and every
// applied migration's checksum) is unchanged.
//
//	{{local "t"}}            DB.t            | DB.t_local
//	{{onCluster}}            ""              | " ON CLUSTER c"
//	{{alterOnCluster}}       ""              | " ON CLUSTER c" on current servers, "" on 18.16 (see below)
//	{{engine "E(args)" "t"}} E(args)         | ReplicatedE('/clickhouse/tables/{shard}/DB/t_local', '{replica}', args)
//	{{distributed "t"}}      ""              | CREATE TABLE DB.t ON CLUSTER c AS DB.t_local ENGINE = Distributed(…)
//	{{dropDistributed "t"}}  ""              | DROP TABLE IF EXISTS DB.t ON CLUSTER c
//	{{redistribute "t" …}}   ""              | the Distributed table dropped and created again (after ALTERs of t_local)
//
// distributed, dropDistributed and redistribute follow a statement's ';' with
// {{- …}}, and each statement they add ends with its own ';' line.
func clusterFuncs(db, cluster string, d Dialect) map[string]any {
	if cluster == "" {
		return map[string]any{
			"local":           func(t string) string { return db + "." + t },
			"onCluster":       func() string { return "" },
			"alterOnCluster":  func() string { return "" },
			"engine":          func(e, _ string) string { return e },
			"distributed":     func(string) (string, error) { return "", nil },
			"dropDistributed": func(string) string { return "" },
			"redistribute":    func(...string) (string, error) { return "", nil },
		}
	}
	on := " ON CLUSTER " + cluster
	create := func(t string) (string, error) {
		key, ok := shardingKeys[t]
		if !ok {
			return "", fmt.Errorf("table %s has no sharding key (migrations/cluster.go)", t)
		}
		return fmt.Sprintf("\n\nCREATE TABLE IF NOT EXISTS %s.%s%s AS %s.%s%s\nENGINE = Distributed(%s, %s, %s%s, %s)\n;",
			db, t, on, db, t, LocalSuffix, cluster, db, t, LocalSuffix, key), nil
	}
	drop := func(t string) string {
		return fmt.Sprintf("\n\nDROP TABLE IF EXISTS %s.%s%s\n;", db, t, on)
	}
	return map[string]any{
		"local":     func(t string) string { return db + "." + t + LocalSuffix },
		"onCluster": func() string { return on },
		// ALTERs of the replicated NAME_local tables: ON CLUSTER on current
		// servers; on 18.16 on the server migrate is connected to, whose
		// table replicates the change to the other replicas of its shard.
		// 18.16's DDLWorker races between the replicas of a shard over who
		// runs an ALTER ON CLUSTER ("Node exists: …/shards/…/executed"),
		// and the loser's DDL worker stops for good: no ON CLUSTER
		// statement finishes until that server restarts (seen here).
		"alterOnCluster": func() string {
			if d.LowCardinality {
				return on
			}
			return ""
		},
		"engine": func(e, t string) (string, error) {
			name, args, _ := strings.Cut(e, "(")
			args = strings.TrimSuffix(args, ")")
			if !strings.HasSuffix(name, "MergeTree") {
				return "", fmt.Errorf("engine %s of %s: only MergeTree engines replicate", e, t)
			}
			out := fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/%s/%s%s', '{replica}'", name, db, t, LocalSuffix)
			if args != "" {
				out += ", " + args
			}
			return out + ")", nil
		},
		"distributed":     create,
		"dropDistributed": drop,
		"redistribute": func(ts ...string) (string, error) {
			var b strings.Builder
			for _, t := range ts {
				c, err := create(t)
				if err != nil {
					return "", err
				}
				b.WriteString(drop(t))
				b.WriteString(c)
			}
			return b.String(), nil
		},
	}
}

var (
	columnComment = regexp.MustCompile(`[ \t]+COMMENT '(?:[^'\\]|\\.)*'`)
	commentColumn = regexp.MustCompile(`(?m)^ALTER TABLE [^\n]* COMMENT COLUMN [^\n]*\n;\n`)
)

// withoutComments removes column comments from rendered SQL: the CREATE
// TABLEs' COMMENT clauses and the ALTER TABLE … COMMENT COLUMN statements.
// ClickHouse 18.16 cannot replicate them: a second replica of a table with
// column comments fails with "Table structure in ZooKeeper is too different
// from local table structure" (code 122), so the cluster schema for old
// servers has none (docs/schema.md documents every column).
func withoutComments(sql string) string {
	return columnComment.ReplaceAllString(commentColumn.ReplaceAllString(sql, ""), "")
}
