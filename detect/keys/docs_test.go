package keys_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// docQuery returns a SQL block of docs/key-registry.md: the block holding
// marker (an SQL comment), or the one following it (an HTML comment).
func docQuery(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "key-registry.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("docs/key-registry.md has no %q", marker)
	}
	start := strings.LastIndex(doc[:i], "```sql\n")
	if strings.HasPrefix(marker, "<!--") {
		start = i + strings.Index(doc[i:], "```sql\n")
	}
	body := doc[start+len("```sql\n"):]
	end := strings.Index(body, "```")
	if start < 0 || end < 0 {
		t.Fatalf("no sql block at %q", marker)
	}
	return strings.TrimSuffix(strings.TrimSpace(body[:end]), ";")
}

// registryFixture is a registry and access log covering the join's cases:
// key_A rotated (only its current fingerprint joins), a key known only by
// fingerprint, a withdrawn entry, an unknown key. INSERT … SELECT, one row
// each: clickhouse-go's Exec of INSERT … VALUES hangs on 18.16.
var registryFixture = func() string {
	var b strings.Builder
	for _, r := range []string{
		`'key_A', 'aaaaaaaaaaaaaaaa', 'acc_1', 'desk', '2025-01-01 00:00:00', ['10.0.0.0/8'], '2026-11-26 00:00:00', 'import', 0`,
		`'key_A', 'bbbbbbbbbbbbbbbb', 'acc_1', 'desk', '2025-01-01 00:00:00', ['10.0.0.0/8'], '2026-11-26 01:00:00', 'kafka', 0`,
		`'cccccccccccccccc', 'cccccccccccccccc', '', 'unknown', '2026-11-01 00:00:00', emptyArrayString(), '2026-11-26 00:00:00', 'kafka', 0`,
		`'dddddddddddddddd', 'dddddddddddddddd', '', '', '2024-01-01 00:00:00', emptyArrayString(), '2026-11-26 00:00:00', 'kafka', 0`,
		`'dddddddddddddddd', 'dddddddddddddddd', '', '', '2024-01-01 00:00:00', emptyArrayString(), '2026-11-26 02:00:00', 'kafka', 1`,
	} {
		f := strings.Split(r, ", ")
		fmt.Fprintf(&b, "INSERT INTO keys (key_id, key_fingerprint, key_hint, env, account_id, owner, status, created_at, allowed_cidrs, updated_at, source, deleted) "+
			"SELECT %s, %s, 'bk_live_…', 'live', %s, %s, 'active', toDateTime(%s), %s, toDateTime(%s), %s, toUInt8(%s);\n",
			f[0], f[1], f[2], f[3], f[4], strings.Join(f[5:len(f)-3], ", "), f[len(f)-3], f[len(f)-2], f[len(f)-1])
	}
	for i, r := range [][2]string{
		{"10.0.0.1", "key_A"}, {"10.0.0.2", "bbbbbbbbbbbbbbbb"}, {"203.0.113.9", "aaaaaaaaaaaaaaaa"},
		{"198.51.100.1", "cccccccccccccccc"}, {"198.51.100.2", "dddddddddddddddd"}, {"198.51.100.3", "eeeeeeeeeeeeeeee"},
	} {
		fmt.Fprintf(&b, "INSERT INTO access_log (ts, request_id, method, path, status, client_ip, key_id) "+
			"SELECT toDateTime('2026-11-27 10:00:0%d'), 'r%d', 'GET', '/', toUInt16(200), '%s', '%s';\n", i, i, r[0], r[1])
	}
	return b.String()
}()

// Expected "registry_key_id requests" of the join query, and the keys of the
// rotation query.
var (
	wantJoin     = []string{"cccccccccccccccc 1", "key_A 2"}
	wantRotation = []string{"key_A"}
)

// TestJoinQueryInDocs runs the documented queries on the real 18.16 server
// and, through chdb, on current ClickHouse.
func TestJoinQueryInDocs(t *testing.T) {
	join := docQuery(t, "<!-- join-query")
	rotation := docQuery(t, "-- keys overdue for rotation")
	stmts := migrations.Split(registryFixture)

	t.Run("18.16", func(t *testing.T) {
		admin := testenv.ClickHouse(t)
		db := testenv.ScratchDB(t, admin)
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{testenv.ClickHouseAddr(t)}, Auth: clickhouse.Auth{Database: db, Username: "default"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx := context.Background()
		for _, s := range stmts {
			if err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		rows, err := conn.Query(ctx, join)
		if err != nil {
			t.Fatalf("join query: %v", err)
		}
		var got []string
		for rows.Next() {
			var (
				id, owner  string
				allow, ips []string
				n          uint64
			)
			if err := rows.Scan(&id, &owner, &allow, &n, &ips); err != nil {
				t.Fatal(err)
			}
			got = append(got, id+" "+strconv.FormatUint(n, 10))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, wantJoin) {
			t.Errorf("join query on 18.16: %v, want %v", got, wantJoin)
		}
		rows, err = conn.Query(ctx, rotation)
		if err != nil {
			t.Fatalf("rotation query: %v", err)
		}
		got = nil
		for rows.Next() {
			var (
				id, hint, owner string
				last            time.Time
				days            int64
			)
			if err := rows.Scan(&id, &hint, &owner, &last, &days); err != nil {
				t.Fatal(err)
			}
			got = append(got, id)
		}
		if !slices.Equal(got, wantRotation) {
			t.Errorf("rotation query on 18.16: %v, want %v", got, wantRotation)
		}
	})

	t.Run("current", func(t *testing.T) {
		testenv.NeedChdb(t)
		ms, err := migrations.Load("auditwatch", migrations.Current)
		if err != nil {
			t.Fatal(err)
		}
		var sql strings.Builder
		sql.WriteString("CREATE DATABASE IF NOT EXISTS auditwatch;\nUSE auditwatch;\n")
		for _, m := range ms {
			for _, s := range m.Statements {
				sql.WriteString(s + ";\n")
			}
		}
		for _, s := range stmts {
			sql.WriteString(s + ";\n")
		}
		cmd := exec.Command("python3", filepath.Join(testenv.RepoRoot(t), "deploy", "chdb", "run_sql.py"), "--format", "TSV",
			"--query", "SELECT registry_key_id, requests FROM ("+join+")",
			"--query", "SELECT '--'",
			"--query", "SELECT key_id FROM ("+rotation+")")
		cmd.Stdin = strings.NewReader(sql.String())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("chdb: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		i := slices.Index(lines, "--")
		if i < 0 {
			t.Fatalf("chdb output:\n%s", out)
		}
		var gotJoin []string
		for _, l := range lines[:i] {
			if f := strings.Split(l, "\t"); len(f) == 2 {
				gotJoin = append(gotJoin, f[0]+" "+f[1])
			}
		}
		if !slices.Equal(gotJoin, wantJoin) || !slices.Equal(lines[i+1:], wantRotation) {
			t.Errorf("chdb: join %v (want %v), rotation %v (want %v)\n%s", gotJoin, wantJoin, lines[i+1:], wantRotation, out)
		}
	})
}
