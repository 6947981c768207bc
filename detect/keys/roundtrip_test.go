package keys_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// TestGeneratorExportRoundTrip imports the generator's registry export (with
// full keys) and checks that every generated key is in the registry with its
// dates, status and allowlist, and that no full key was stored.
func TestGeneratorExportRoundTrip(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	cfg := gen.DefaultConfig()
	cfg.Scenarios, cfg.EventsPerSecond = nil, 1
	g, err := gen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "registry.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.WriteRegistryYAML(f, g.RegistryExport()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	store := keys.NewStore(conn, db)
	res, err := importFile(t, store, path, keys.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	genKeys := g.Keys()
	if res.New != len(genKeys) {
		t.Fatalf("import result %+v, want %d new", res, len(genKeys))
	}
	all, err := store.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]keys.Key{}
	for _, k := range all {
		byID[k.ID] = k
	}
	if len(byID) != len(genKeys) {
		t.Fatalf("%d keys in the registry, want %d", len(byID), len(genKeys))
	}
	opt := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	ptr := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	var secrets []string
	withAllowlist, v6 := 0, 0
	for _, gk := range genKeys {
		secrets = append(secrets, gk.Secret)
		k, ok := byID[gk.ID]
		if !ok {
			t.Errorf("generated key %s missing", gk.ID)
			continue
		}
		if k.Fingerprint != secret.Fingerprint(gk.Secret) || k.Hint != secret.Hint(gk.Secret) || k.Env != gk.Env ||
			k.AccountID != gk.AccountID || k.Owner != gk.Owner || k.Status != gk.Status {
			t.Errorf("key %s: got %+v, generated %+v", gk.ID, k, gk)
		}
		for _, d := range []struct{ name, got, want string }{
			{"created_at", opt(k.CreatedAt), opt(gk.CreatedAt)},
			{"rotated_at", ptr(k.RotatedAt), opt(gk.RotatedAt)},
			{"expires_at", ptr(k.ExpiresAt), opt(gk.ExpiresAt)},
			{"last_used_at", ptr(k.LastUsedAt), opt(gk.LastUsedAt)},
		} {
			if d.got != d.want {
				t.Errorf("key %s: %s %s, generated %s", gk.ID, d.name, d.got, d.want)
			}
		}
		var got []string
		for _, p := range k.AllowedCIDRs {
			got = append(got, p.String())
		}
		want := slices.Clone(gk.AllowedCIDRs)
		slices.Sort(want)
		slices.Sort(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("key %s: allowlist %v, generated %v", gk.ID, got, want)
		}
		if len(want) > 0 {
			withAllowlist++
			if strings.Contains(strings.Join(want, ","), ":") {
				v6++
			}
		}
		// The generator's normal traffic for a key comes from its home IPs,
		// which its allowlist allows.
		for _, ip := range gk.HomeIPs {
			if !k.Allows(netip.MustParseAddr(ip)) {
				t.Errorf("key %s: home IP %s not allowed by %v", gk.ID, ip, k.AllowedCIDRs)
			}
		}
		if k.LastRotation().Before(k.CreatedAt) {
			t.Errorf("key %s: last rotation before creation", gk.ID)
		}
	}
	if withAllowlist < 30 || v6 < 1 {
		t.Errorf("%d keys with allowlist, %d with IPv6: the export lost allowlists", withAllowlist, v6)
	}
	assertNoSecrets(t, conn, db, secrets...)
}
