package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterConfig: clickhouse.cluster defaults to "" (a single server),
// must be a plain name, and marks the connections opened with it so that
// migrate renders the cluster schema.
func TestClusterConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    string
		wantErr string
	}{
		{"default single server", "clickhouse: {database: auditwatch}\n", "", ""},
		{"cluster", "clickhouse: {cluster: aw_cluster}\n", "aw_cluster", ""},
		{"not a name", "clickhouse: {cluster: \"aw cluster; DROP\"}\n", "", "clickhouse.cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadConfig = %v, want an error about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ClickHouse.Cluster != tt.want || cfg.ClickHouse.For("ingest").Cluster != tt.want {
				t.Fatalf("cluster = %q (ingest %q), want %q", cfg.ClickHouse.Cluster, cfg.ClickHouse.For("ingest").Cluster, tt.want)
			}
			conn, err := openClickHouseDB(cfg.ClickHouse, "default")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := clusterOf(conn); got != tt.want {
				t.Fatalf("clusterOf(connection) = %q, want %q", got, tt.want)
			}
		})
	}
}
