// Package grants_test checks, on the live ClickHouse test server, that each
// component user can do its job and is refused what it must not do: the
// users of users.d/auditwatch.xml on 18.16, and those of
// current/users.d/auditwatch.xml (grants.sql's rights) on current ClickHouse
// (deploy/services/clickhouse-current.sh). Where the two legitimately differ
// (18.16 has no per-table rights, current ClickHouse no allow_databases),
// the expectations follow the server's version. See docs/security.md.
package grants_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// db is the database the XML users are limited to.
const db = "auditwatch"

// ClickHouse error codes of a refusal: readonly mode, DDL prohibited
// (allow_ddl = 0), database access denied, and current ClickHouse's
// ACCESS_DENIED (a missing grant) and SETTING_CONSTRAINT_VIOLATION (a
// settings profile constraint).
var accessCodes = map[int32]string{164: "READONLY", 392: "QUERY_IS_PROHIBITED", 291: "DATABASE_ACCESS_DENIED", 497: "ACCESS_DENIED", 452: "SETTING_CONSTRAINT_VIOLATION"}

// migrateDB applies the schema to the auditwatch database (idempotent) as
// the default user, and returns whether the server is current ClickHouse
// (not 18.16) with its version.
func migrateDB(t *testing.T, admin driver.Conn) (current bool, version string) {
	t.Helper()
	ctx := context.Background()
	var v string
	if err := admin.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	d, err := migrations.DialectFor(v)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations.Load(db, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, admin, db, ms, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate %s: %v", db, err)
	}
	return !strings.HasPrefix(v, "18."), v
}

// connectAs opens a connection as user (dev password "<user>_dev") with
// session database sessionDB.
func connectAs(t *testing.T, addr, user, sessionDB string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr},
		Auth:        clickhouse.Auth{Database: sessionDB, Username: user, Password: user + "_dev"},
		DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, MaxOpenConns: 1})
	if err != nil {
		t.Fatalf("open as %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// refused reports whether err is ClickHouse refusing the statement for lack
// of rights, and the code.
func refused(err error) (bool, string) {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		name, ok := accessCodes[ex.Code]
		return ok, fmt.Sprintf("code %d %s", ex.Code, name)
	}
	return false, "not a server exception"
}

// op is one statement; query may name {probe}, {other} (a table in a
// scratch database), {defaulttbl} (a table in the default database) and
// {day}/{day2}/{marker}. pre, if set, runs first in the same session (its
// error is ignored): what a user might try before the statement.
type op struct {
	what  string
	query string
	pre   string
}

func TestComponentUsersCanDoTheirJobAndNothingElse(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	admin := testenv.Connect(t, addr)
	ctx := context.Background()
	current, version := migrateDB(t, admin)
	t.Logf("server %s: users of %s", version, map[bool]string{false: "users.d/auditwatch.xml", true: "current/users.d/auditwatch.xml (grants.sql)"}[current])

	// Everything the test writes lands in one day of January 2001 (a
	// partition no real data has) and carries a marker, and is removed by
	// the default user at the end.
	suffix := testenv.RandomName("")
	marker := "aw_priv_" + suffix
	day := time.Date(2001, 1, 2+int(suffix[0])%26, 12, 0, 0, 0, time.UTC)
	// day2 holds one access_log row (request_id marker_r) for aw_retention
	// to drop: a table it has the right to drop partitions of on every version.
	day2 := day.AddDate(0, 0, 1)
	probe := db + ".aw_priv_probe_" + suffix
	other := testenv.ScratchDB(t, admin) + ".access_log"
	defaultTbl := "default.aw_priv_probe_" + suffix
	for _, q := range []string{
		"CREATE TABLE " + probe + " (d Date, s String) ENGINE = MergeTree PARTITION BY toYYYYMMDD(d) ORDER BY s",
		"CREATE TABLE " + defaultTbl + " (s String) ENGINE = Memory",
		"INSERT INTO " + probe + " (d, s) SELECT '" + day.Format("2006-01-02") + "', 'x'",
		"INSERT INTO " + db + ".access_log (ts, request_id, method, path, status, client_ip) SELECT toDateTime('" + day2.Format("2006-01-02 15:04:05") + "'), '" + marker + "_r', 'GET', '/', 200, '1.2.3.4'",
	} {
		if err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { cleanup(t, admin, day, day2, marker, probe, defaultTbl) })

	expand := func(q string) string {
		return strings.NewReplacer("{probe}", probe, "{other}", other, "{defaulttbl}", defaultTbl,
			"{ts}", "toDateTime('"+day.Format("2006-01-02 15:04:05")+"')", "{day}", day.Format("20060102"), "{day2}", day2.Format("20060102"),
			"{marker}", marker).Replace(q)
	}

	// What every component user must be refused.
	noDDL := []op{
		{"ALTER DELETE (mutation)", "ALTER TABLE {probe} DELETE WHERE 1", ""},
		{"ALTER DELETE on access_log", "ALTER TABLE auditwatch.access_log DELETE WHERE request_id = '{marker}'", ""},
		{"DROP PARTITION", "ALTER TABLE {probe} DROP PARTITION {day}", ""},
		{"DROP TABLE", "DROP TABLE {probe}", ""},
		{"TRUNCATE", "TRUNCATE TABLE {probe}", ""},
		{"CREATE TABLE", "CREATE TABLE auditwatch.aw_priv_new_{marker} (a UInt8) ENGINE = Memory", ""},
		{"RENAME TABLE", "RENAME TABLE {probe} TO auditwatch.aw_priv_renamed_{marker}", ""},
		{"OPTIMIZE", "OPTIMIZE TABLE {probe}", ""},
	}
	otherDBs := []op{
		{"read another database", "SELECT count() FROM {other}", ""},
		{"write another database", "INSERT INTO {other} (ts, request_id, method, path, status, client_ip) SELECT {ts}, '{marker}', 'GET', '/', 200, '1.2.3.4'", ""},
		{"read the default database", "SELECT count() FROM {defaulttbl}", ""},
		{"create a database", "CREATE DATABASE aw_priv_db_{marker}", ""},
	}
	noWrite := []op{
		{"INSERT", "INSERT INTO auditwatch.access_log (ts, request_id, method, path, status, client_ip) SELECT {ts}, '{marker}', 'GET', '/', 200, '1.2.3.4'", ""},
		{"INSERT findings", "INSERT INTO auditwatch.findings (finding_id, rule_id, eval_time) SELECT '{marker}', 'r', {ts}", ""},
	}
	// 18.16 keeps writers from DDL with allow_ddl = 0, which they must not
	// undo. Current ClickHouse refuses DDL by the missing grant (grants.sql
	// sets no allow_ddl), whatever the session's allow_ddl.
	writerNoSet := []op{
		{"SET allow_ddl back on", "SET allow_ddl = 1", ""},
		{"per-query allow_ddl", "SELECT 1 SETTINGS allow_ddl = 1", ""},
	}
	if current {
		writerNoSet = []op{
			{"DROP TABLE after SET allow_ddl = 1", "DROP TABLE {probe}", "SET allow_ddl = 1"},
			{"ALTER DELETE after SET allow_ddl = 1", "ALTER TABLE auditwatch.access_log DELETE WHERE request_id = '{marker}'", "SET allow_ddl = 1"},
		}
	}
	// Per-table rights: only current ClickHouse has them (grants.sql);
	// on 18.16 a user may use every table of auditwatch.
	perTable := func(ops ...op) []op {
		if current {
			return ops
		}
		return nil
	}
	cat := func(lists ...[]op) []op {
		var out []op
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}

	tests := []struct {
		user      string
		allowed   []op
		forbidden []op
	}{
		{user: "aw_ingest",
			allowed: []op{
				{"insert access_log", "INSERT INTO auditwatch.access_log (ts, request_id, method, path, status, client_ip) SELECT {ts}, '{marker}', 'GET', '/', 200, '1.2.3.4'", ""},
				{"insert ingest_errors", "INSERT INTO auditwatch.ingest_errors (received_at, topic, partition, offset, reason) SELECT {ts}, '{marker}', 0, 1, 'invalid_json'", ""},
				{"insert ingest_progress", "INSERT INTO auditwatch.ingest_progress (written_at, seq, topic, partition, complete_to) SELECT {ts}, 1, '{marker}', 0, {ts}", ""},
				{"redelivery check reads access_log", "SELECT kafka_offset, request_id FROM auditwatch.access_log WHERE request_id = '{marker}'", ""},
				{"redelivery check reads ingest_errors", "SELECT offset FROM auditwatch.ingest_errors WHERE topic = '{marker}'", ""},
			},
			forbidden: cat(noDDL, otherDBs, writerNoSet, perTable(
				op{"insert findings", "INSERT INTO auditwatch.findings (finding_id, rule_id, eval_time) SELECT '{marker}', 'r', {ts}", ""},
				op{"insert keys", "INSERT INTO auditwatch.keys (key_id, created_at, updated_at) SELECT '{marker}', {ts}, {ts}", ""},
				op{"read findings", "SELECT count() FROM auditwatch.findings", ""},
			))},
		{user: "aw_detect",
			allowed: []op{
				{"read access_log", "SELECT count() FROM auditwatch.access_log WHERE ts >= now() - 3600", ""},
				{"read key_usage rollup", "SELECT count() FROM auditwatch.key_usage", ""},
				{"read keys registry", "SELECT count() FROM auditwatch.keys FINAL", ""},
				{"read ingest_progress", "SELECT max(seq) FROM auditwatch.ingest_progress", ""},
				{"insert findings", "INSERT INTO auditwatch.findings (finding_id, rule_id, eval_time) SELECT '{marker}', 'r', {ts}", ""},
				{"insert rule_runs", "INSERT INTO auditwatch.rule_runs (rule_id, eval_time, started_at) SELECT '{marker}', {ts}, {ts}", ""},
				{"insert alert_deliveries", "INSERT INTO auditwatch.alert_deliveries (attempted_at, finding_id, rule_id) SELECT {ts}, '{marker}', 'r'", ""},
				{"insert silences", "INSERT INTO auditwatch.silences (silence_id, rule_id, created_at, updated_at) SELECT '{marker}', 'r', {ts}, {ts}", ""},
			},
			forbidden: cat(noDDL, otherDBs, writerNoSet, perTable(
				op{"insert access_log", "INSERT INTO auditwatch.access_log (ts, request_id, method, path, status, client_ip) SELECT {ts}, '{marker}', 'GET', '/', 200, '1.2.3.4'", ""},
				op{"insert keys", "INSERT INTO auditwatch.keys (key_id, created_at, updated_at) SELECT '{marker}', {ts}, {ts}", ""},
				op{"read ingest_errors", "SELECT count() FROM auditwatch.ingest_errors", ""},
			))},
		{user: "aw_keys",
			allowed: []op{
				{"insert keys", "INSERT INTO auditwatch.keys (key_id, created_at, updated_at) SELECT '{marker}', {ts}, {ts}", ""},
				{"insert key_events", "INSERT INTO auditwatch.key_events (ts, type, key_id) SELECT {ts}, 'created', '{marker}'", ""},
				{"read keys", "SELECT count() FROM auditwatch.keys FINAL WHERE key_id = '{marker}'", ""},
			},
			forbidden: cat(noDDL, otherDBs, writerNoSet, perTable(
				op{"insert access_log", "INSERT INTO auditwatch.access_log (ts, request_id, method, path, status, client_ip) SELECT {ts}, '{marker}', 'GET', '/', 200, '1.2.3.4'", ""},
				op{"read findings", "SELECT count() FROM auditwatch.findings", ""},
			))},
		{user: "aw_rules",
			allowed: []op{
				{"read access_log", "SELECT count() FROM auditwatch.access_log WHERE ts >= now() - 3600", ""},
				{"unqualified read in its session database", "SELECT count() FROM key_usage", ""},
				{"per-query limits (readonly=2)", "SELECT count() FROM auditwatch.access_log SETTINGS max_execution_time = 5, max_result_rows = 10", ""},
			},
			forbidden: cat(noDDL, otherDBs, noWrite, []op{{"SET readonly = 0", "SET readonly = 0", ""}}, perTable(
				op{"read findings", "SELECT count() FROM auditwatch.findings", ""},
				op{"read ingest_errors (raw dead letters)", "SELECT count() FROM auditwatch.ingest_errors", ""},
				op{"list partitions", "SELECT count() FROM system.parts", ""},
				op{"raise a limit above its profile's constraint", "SELECT 1 SETTINGS max_rows_to_read = 600000000", ""},
			))},
		{user: "aw_analyst",
			allowed: []op{
				{"read access_log", "SELECT count() FROM auditwatch.access_log WHERE ts >= now() - 3600", ""},
				{"read findings", "SELECT count() FROM auditwatch.findings", ""},
			},
			forbidden: cat(noDDL, otherDBs, noWrite, []op{{"change a setting", "SELECT 1 SETTINGS max_execution_time = 1000", ""}})},
		{user: "aw_retention",
			allowed: append([]op{
				{"list partitions", "SELECT partition, sum(rows) FROM system.parts WHERE database = 'auditwatch' AND active GROUP BY partition", ""},
				{"drop an access_log partition", "ALTER TABLE auditwatch.access_log DROP PARTITION {day2}", ""},
			}, retentionProbe(!current)...),
			// 18.16: any DDL in auditwatch (allow_ddl = 1). Current: ALTER
			// DELETE on the tables with a retention setting, nothing else.
			forbidden: cat(otherDBs, retentionProbe(current), perTable(
				op{"drop a partition of silences", "ALTER TABLE auditwatch.silences DROP PARTITION 200101", ""},
				op{"delete from keys", "ALTER TABLE auditwatch.keys DELETE WHERE key_id = '{marker}'", ""},
				op{"DROP TABLE", "DROP TABLE {probe}", ""},
				op{"TRUNCATE", "TRUNCATE TABLE auditwatch.access_log", ""},
				op{"CREATE TABLE", "CREATE TABLE auditwatch.aw_priv_new_{marker} (a UInt8) ENGINE = Memory", ""},
				op{"OPTIMIZE", "OPTIMIZE TABLE auditwatch.access_log", ""},
				op{"INSERT", "INSERT INTO auditwatch.access_log (ts, request_id, method, path, status, client_ip) SELECT {ts}, '{marker}', 'GET', '/', 200, '1.2.3.4'", ""},
			))},
		{user: "aw_migrate",
			allowed: []op{
				{"create the database", "CREATE DATABASE IF NOT EXISTS auditwatch", ""},
				{"read schema_migrations", "SELECT count() FROM auditwatch.schema_migrations", ""},
			},
			forbidden: otherDBs},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			conn := connectAs(t, addr, tt.user, db)
			for _, o := range tt.allowed {
				if err := conn.Exec(ctx, expand(o.query)); err != nil {
					t.Errorf("%s may %s on %s, but: %v", tt.user, o.what, version, err)
				}
			}
			for _, o := range tt.forbidden {
				if o.pre != "" {
					_ = conn.Exec(ctx, expand(o.pre))
				}
				err := conn.Exec(ctx, expand(o.query))
				if err == nil {
					t.Errorf("%s could %s on %s (%s)", tt.user, o.what, version, expand(o.query))
					continue
				}
				if ok, code := refused(err); !ok {
					t.Errorf("%s: %s failed, but not with an access error (%s): %v", tt.user, o.what, code, err)
				}
			}
		})
	}

	// The writes above really landed (the allowed statements were not
	// silently ignored).
	for table, where := range map[string]string{
		"access_log": "request_id", "ingest_errors": "topic", "ingest_progress": "topic", "findings": "finding_id",
		"rule_runs": "rule_id", "alert_deliveries": "finding_id", "silences": "silence_id", "keys": "key_id", "key_events": "key_id",
	} {
		if n := testenv.Count(t, admin, fmt.Sprintf("SELECT count() FROM %s.%s WHERE %s = ?", db, table, where), marker); n != 1 {
			t.Errorf("%s holds %d rows of this test, want 1", table, n)
		}
	}
	// aw_retention's drop removed the access_log partition of day2.
	if n := testenv.Count(t, admin, "SELECT count() FROM "+db+".access_log WHERE request_id = ?", marker+"_r"); n != 0 {
		t.Errorf("access_log holds %d rows of day2 after aw_retention dropped its partition", n)
	}
	// 18.16: aw_retention's drop removed the probe's partition; nobody
	// else's attempt did anything to it before (the row was still there
	// for it). Current: nobody could drop it.
	want := uint64(0)
	if current {
		want = 1
	}
	if n := testenv.Count(t, admin, "SELECT count() FROM "+probe); n != want {
		t.Errorf("probe table holds %d rows at the end, want %d", n, want)
	}
}

// TestRestrictedUsersNeedTheirSessionDatabase shows why auditwatch connects
// its component users with the auditwatch database as session database (or
// none, for migrate): on 18.16 a user limited to auditwatch cannot open a
// session in `default`. Current ClickHouse checks rights per statement, not
// on the session database: the session opens, and a table there is refused.
func TestRestrictedUsersNeedTheirSessionDatabase(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	admin := testenv.Connect(t, addr)
	current, version := migrateDB(t, admin)
	ctx := context.Background()
	defaultTbl := "default.aw_priv_session_" + testenv.RandomName("")
	if err := admin.Exec(ctx, "CREATE TABLE "+defaultTbl+" (s String) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP TABLE IF EXISTS "+defaultTbl) })
	tests := []struct {
		name, user, session string
		ok, okCurrent       bool
	}{
		{"ingest in auditwatch", "aw_ingest", db, true, true},
		{"ingest in default", "aw_ingest", "default", false, true},
		{"migrate without a session database", "aw_migrate", "", true, true},
		{"analyst in default", "aw_analyst", "default", false, true},
		{"wrong password", "aw_ingest_wrong", db, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok := tt.ok
			if current {
				ok = tt.okCurrent
			}
			conn := connectAs(t, addr, tt.user, tt.session)
			err := conn.Ping(ctx)
			if ok && err != nil {
				t.Fatalf("%s with session database %q on %s: %v", tt.user, tt.session, version, err)
			}
			if !ok && err == nil {
				t.Fatalf("%s with session database %q connected on %s", tt.user, tt.session, version)
			}
			if !ok || tt.session != "default" {
				return
			}
			// In a session it may open, the database's tables stay refused.
			err = conn.Exec(ctx, "SELECT count() FROM "+strings.TrimPrefix(defaultTbl, "default."))
			if err == nil {
				t.Fatalf("%s read %s from a session in default", tt.user, defaultTbl)
			}
			if r, code := refused(err); !r {
				t.Fatalf("%s reading %s: not an access error (%s): %v", tt.user, defaultTbl, code, err)
			}
		})
	}
}

// retentionProbe is aw_retention dropping the probe table's partition, if
// on: allowed on 18.16 (allow_ddl = 1 in auditwatch), refused on current
// ClickHouse (the probe is no table with a retention setting).
func retentionProbe(on bool) []op {
	if !on {
		return nil
	}
	return []op{{"drop a partition of a table without retention", "ALTER TABLE {probe} DROP PARTITION {day}", ""}}
}

// cleanup removes what the test wrote, as the default user.
func cleanup(t *testing.T, admin driver.Conn, day, day2 time.Time, marker, probe, defaultTbl string) {
	ctx := context.Background()
	stmts := []string{"DROP TABLE IF EXISTS " + probe, "DROP TABLE IF EXISTS " + defaultTbl,
		// Left only if a refusal failed.
		"DROP TABLE IF EXISTS " + db + ".aw_priv_new_" + marker, "DROP TABLE IF EXISTS " + db + ".aw_priv_renamed_" + marker,
		"DROP DATABASE IF EXISTS aw_priv_db_" + marker}
	for _, table := range []string{"access_log", "ingest_errors", "ingest_progress"} {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %s", db, table, day.Format("20060102")))
	}
	// Left only if aw_retention's drop failed.
	stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s.access_log DROP PARTITION %s", db, day2.Format("20060102")))
	for _, table := range []string{"findings", "rule_runs", "alert_deliveries", "key_events", "key_usage"} {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %s", db, table, day.Format("200601")))
	}
	stmts = append(stmts,
		fmt.Sprintf("ALTER TABLE %s.keys DELETE WHERE key_id = '%s'", db, marker),
		fmt.Sprintf("ALTER TABLE %s.silences DELETE WHERE silence_id = '%s'", db, marker))
	for _, q := range stmts {
		if err := admin.Exec(ctx, q); err != nil {
			t.Logf("cleanup: %s: %v", q, err)
		}
	}
}
