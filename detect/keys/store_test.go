package keys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Full keys in testdata/good.*: they must never reach ClickHouse.
var goodSecrets = []string{
	"bk_live_Alpha0000000000000000000000000001",
	"bk_live_Charlie00000000000000000000000003",
}

// importFile does what `auditwatch keys import` does: parse, then write
// only if the whole file is valid.
func importFile(t *testing.T, s *keys.Store, path string, opts keys.ImportOptions) (keys.ImportResult, error) {
	t.Helper()
	ks, err := keys.ParseFile(path, "")
	if err != nil {
		return keys.ImportResult{}, err
	}
	return s.Import(context.Background(), ks, opts)
}

// dumpTables returns every column of every row of the registry tables and
// ingest_errors as text, one row per line.
func dumpTables(t *testing.T, conn driver.Conn, db string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, table := range []string{"keys", "key_events", "ingest_errors"} {
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT * FROM %s.%s", db, table))
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cts := rows.ColumnTypes()
		for rows.Next() {
			vals := make([]any, len(cts))
			for i, ct := range cts {
				vals[i] = reflect.New(ct.ScanType()).Interface()
			}
			if err := rows.Scan(vals...); err != nil {
				t.Fatalf("scan %s: %v", table, err)
			}
			b.WriteString(table)
			for i, v := range vals {
				e := reflect.ValueOf(v).Elem()
				for e.Kind() == reflect.Pointer && !e.IsNil() {
					e = e.Elem()
				}
				fmt.Fprintf(&b, "|%s=%v", cts[i].Name(), e.Interface())
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}

// assertNoSecrets fails if any column of any row of the registry tables or
// ingest_errors holds one of secrets. It also checks that their fingerprints
// are there, so the search is known to see the rows.
func assertNoSecrets(t *testing.T, conn driver.Conn, db string, secrets ...string) {
	t.Helper()
	dump := dumpTables(t, conn, db)
	for _, s := range secrets {
		if strings.Contains(dump, s) {
			t.Fatalf("full key %s… stored in ClickHouse:\n%s", s[:12], dump)
		}
		if !strings.Contains(dump, secret.Fingerprint(s)) {
			t.Fatalf("fingerprint of %s… not found: the search does not see the rows:\n%s", s[:12], dump)
		}
	}
	t.Logf("%d rows searched for %d keys", strings.Count(dump, "\n"), len(secrets))
}

func keysJSON(t *testing.T, ks []keys.Key) []string {
	t.Helper()
	out := make([]string, len(ks))
	for i, k := range ks {
		k.UpdatedAt = time.Time{}
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	return out
}

func TestImport(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	parsed, err := keys.ParseFile("testdata/good.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	want := keysJSON(t, parsed)

	tests := []struct {
		name, file string
	}{
		{"yaml", "testdata/good.yaml"},
		{"csv", "testdata/good.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := testenv.ScratchDB(t, conn)
			s := keys.NewStore(conn, db)
			before := time.Now().UTC().Truncate(time.Second)
			res, err := importFile(t, s, tt.file, keys.ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res != (keys.ImportResult{New: 4}) {
				t.Errorf("result %+v, want 4 new", res)
			}
			got, err := s.All(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// All sorts by id: the fingerprint-only key comes first.
			wantSorted := []string{want[2], want[0], want[1], want[3]}
			if g := keysJSON(t, got); strings.Join(g, "\n") != strings.Join(wantSorted, "\n") {
				t.Fatalf("registry after import:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(wantSorted, "\n"))
			}
			for _, k := range got {
				if k.UpdatedAt.Before(before) {
					t.Errorf("key %s: updated_at %v before the import", k.ID, k.UpdatedAt)
				}
			}
			if n := testenv.Count(t, conn, "SELECT count() FROM "+db+".key_events WHERE type = 'imported'"); n != 4 {
				t.Errorf("%d imported events in key_events, want 4", n)
			}
			assertNoSecrets(t, conn, db, goodSecrets...)

			// Importing again changes nothing but the versions; FINAL
			// still gives one row per key.
			res, err = importFile(t, s, tt.file, keys.ImportOptions{})
			if err != nil || res != (keys.ImportResult{Unchanged: 4}) {
				t.Fatalf("second import: %+v, %v; want 4 unchanged", res, err)
			}
			again, err := s.All(ctx)
			if err != nil || len(again) != 4 {
				t.Fatalf("All after re-import: %d keys, %v", len(again), err)
			}
			for i := range again {
				if !again[i].UpdatedAt.After(got[i].UpdatedAt) {
					t.Errorf("key %s: version %v not after %v", again[i].ID, again[i].UpdatedAt, got[i].UpdatedAt)
				}
			}
		})
	}
}

func TestImportBadFileImportsNothing(t *testing.T) {
	conn := testenv.ClickHouse(t)
	for _, file := range []string{"testdata/bad.yaml", "testdata/bad.csv"} {
		t.Run(file, func(t *testing.T) {
			db := testenv.ScratchDB(t, conn)
			_, err := importFile(t, keys.NewStore(conn, db), file, keys.ImportOptions{})
			var list keys.ErrorList
			if !errors.As(err, &list) || len(list) < 5 {
				t.Fatalf("import of %s: %v; want several errors", file, err)
			}
			if n := testenv.Count(t, conn, "SELECT count() FROM "+db+".keys"); n != 0 {
				t.Fatalf("%d rows imported from a file with errors", n)
			}
		})
	}
}

func TestImportMergesReplacesKeeps(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	s := keys.NewStore(conn, db)
	ctx := context.Background()
	parse := func(y string) []keys.Key {
		t.Helper()
		ks, err := keys.Parse("t.yaml", []byte(y), keys.FormatYAML)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	const k1 = "bk_live_Merge0000000000000000000000000001"
	// First known only by its key (id = fingerprint), with a last use.
	if _, err := s.Import(ctx, parse(`keys:
  - {api_key: `+k1+`, created_at: 2025-01-01, last_used_at: 2026-11-01}
  - {id: key_other, env: live, created_at: 2025-01-01}
  - {id: key_gone, env: test, created_at: 2025-01-01}
`), keys.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	// Then the registry export names it, without the key or last use, and
	// without key_gone, with --replace.
	res, err := s.Import(ctx, parse(`keys:
  - {id: key_merged, fingerprint: `+fingerprint(k1)+`, env: live, owner: desk, created_at: 2025-01-01}
  - {id: key_other, env: live, created_at: 2025-01-01}
`), keys.ImportOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := (keys.ImportResult{Changed: 1, Unchanged: 1, Revoked: 1, Merged: 1}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	all, err := s.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]keys.Key{}
	for _, k := range all {
		got[k.ID] = k
	}
	if len(got) != 3 {
		t.Fatalf("keys %v, want key_gone, key_merged, key_other (the fingerprint entry withdrawn)", keysJSON(t, all))
	}
	m := got["key_merged"]
	if m.Hint != "bk_live_Merg…0001" || m.LastUsedAt == nil || m.Owner != "desk" {
		t.Errorf("merged key lost what the import did not know: %+v", m)
	}
	if got["key_gone"].Status != keys.StatusRevoked || got["key_other"].Status != keys.StatusActive {
		t.Errorf("replace: key_gone %s, key_other %s", got["key_gone"].Status, got["key_other"].Status)
	}
	// Dry run writes nothing.
	before := testenv.Count(t, conn, "SELECT count() FROM "+db+".keys")
	if _, err := s.Import(ctx, parse("keys: []\n"), keys.ImportOptions{Replace: true, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if after := testenv.Count(t, conn, "SELECT count() FROM "+db+".keys"); after != before {
		t.Errorf("dry run wrote %d rows", after-before)
	}
	assertNoSecrets(t, conn, db, k1)
}

// TestUpsertSameSecond writes two versions of a key within one second: the
// later must win although updated_at has whole seconds.
func TestUpsertSameSecond(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	s := keys.NewStore(conn, db)
	ctx := context.Background()
	k := keys.Key{ID: "key_1", Env: "live", Status: keys.StatusActive, CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, owner := range []string{"a", "b", "c", "d"} {
		k.Owner = owner
		if err := s.Upsert(ctx, []keys.Key{k}, keys.SourceImport); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.All(ctx)
	if err != nil || len(all) != 1 || all[0].Owner != "d" {
		t.Fatalf("All = %v, %v; want key_1 owned by d", keysJSON(t, all), err)
	}
	if err := s.Upsert(ctx, []keys.Key{{ID: "x", Status: "paused"}}, keys.SourceImport); err == nil {
		t.Error("Upsert accepted status paused")
	}
	if err := s.Upsert(ctx, []keys.Key{k}, "manual"); err == nil {
		t.Error("Upsert accepted source manual")
	}
}

func fingerprint(k string) string { return secret.Fingerprint(k) }
