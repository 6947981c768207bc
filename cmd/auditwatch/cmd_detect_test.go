package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

// TestBoundSQLRules: detect.sql_rules reaches the engine, and sql rules run
// as clickhouse.users.rules when it is set (here aw_analyst, whose readonly=1
// profile makes the engine refuse to run them: proof of which user ran).
func TestBoundSQLRules(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	admin := testenv.Connect(t, addr)
	ctx := context.Background()
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS auditwatch"); err != nil {
		t.Fatal(err)
	}
	rs, errs := rules.Parse("r.yaml", []byte(`rules:
  - id: one
    severity: medium
    schedule: "@every 5m"
    type: sql
    window: 5m
    query: "SELECT 'x' AS group, 1 AS count FROM system.one WHERE {from} < {to}"
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tests := []struct {
		name    string
		users   map[string]CHCredentials
		wantErr string
	}{
		{"no rules user: the detector's connection", nil, ""},
		{"rules user: its own connection", map[string]CHCredentials{"rules": {Username: "aw_analyst", Password: "aw_analyst_dev"}}, "sql rule limits not in force"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig("")
			if err != nil {
				t.Fatal(err)
			}
			cfg.ClickHouse.Addr, cfg.ClickHouse.Database, cfg.ClickHouse.Users = []string{addr}, "auditwatch", tt.users
			cfg.Detect.SQLRules.MaxRowsToRead, cfg.Detect.SQLRules.MaxExecutionTime = 1234, 7*time.Second
			eng := detect.NewEngine(admin, "auditwatch", nil, slog.New(slog.DiscardHandler))
			closeRules, err := boundSQLRules(cfg, eng)
			if err != nil {
				t.Fatal(err)
			}
			defer closeRules()
			if eng.SQLLimits.MaxRowsToRead != 1234 || eng.SQLLimits.MaxExecutionTime != 7*time.Second || eng.SQLLimits.MaxResultRows != 100_000 {
				t.Fatalf("limits %+v", eng.SQLLimits)
			}
			if (eng.SQLConn != nil) != (tt.users != nil) {
				t.Fatalf("SQLConn set: %v, want %v", eng.SQLConn != nil, tt.users != nil)
			}
			_, err = eng.Eval(ctx, rs[0], time.Now())
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("eval: %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "aw_analyst_dev") {
				t.Fatal("the password is in the error")
			}
		})
	}
}
