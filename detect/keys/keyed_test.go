package keys_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

const (
	keyedSecret = "registry-and-ingest-share-this-secret-01"
	keyedAPIKey = "bk_live_Keyed000000000000000000000000001"
)

var keyedRegistry = `keys:
  - id: key_keyed_1
    api_key: ` + keyedAPIKey + `
    owner: quant-desk
    created_at: 2026-01-01
`

// accessEvent is an access-log event presenting keyedAPIKey, as the gateway
// sends it (no key_id: the row is named by its fingerprint).
var accessEvent = `{"ts":"` + time.Now().UTC().Add(-time.Minute).Format(time.RFC3339) + `","request_id":"req_keyed_1","method":"GET","path":"/v1/orders",` +
	`"status":200,"client_ip":"198.51.100.7","api_key":"` + keyedAPIKey + `"}`

// TestKeyedFingerprintsAgree checks that import, lifecycle events and the
// ingest decoder give one key the same fingerprint under one secret, and
// that the keyed fingerprint is not the plain one.
func TestKeyedFingerprintsAgree(t *testing.T) {
	fpr := secret.NewFingerprinter([]byte(keyedSecret))
	want := fpr.Fingerprint(keyedAPIKey)
	if want == secret.Fingerprint(keyedAPIKey) {
		t.Fatal("keyed fingerprint equals the plain one")
	}

	imported, _, err := keys.Parser{Fingerprinter: fpr}.ParseWithWarnings("r.yaml", []byte(keyedRegistry), keys.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := keys.Parse("r.yaml", []byte(keyedRegistry), keys.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := keys.DecodeEventWith([]byte(`{"type":"rotated","ts":"2026-11-27T10:00:00Z","key_id":"key_keyed_1","api_key":"`+keyedAPIKey+`"}`), time.Now(), fpr)
	if err != nil {
		t.Fatal(err)
	}
	d := event.NewDecoder(0, 0)
	d.FingerprintKey = []byte(keyedSecret)
	row, err := d.Decode([]byte(accessEvent), time.Now())
	if err != nil {
		t.Fatal(err)
	}

	for name, got := range map[string]string{"import": imported[0].Fingerprint, "lifecycle event": ev.Fingerprint, "ingest": row.KeyFP} {
		if got != want {
			t.Errorf("%s: fingerprint %q, want the keyed %q", name, got, want)
		}
	}
	if plain[0].Fingerprint != secret.Fingerprint(keyedAPIKey) {
		t.Errorf("the zero Parser: %q, want the plain fingerprint", plain[0].Fingerprint)
	}
	if imported[0].Hint != plain[0].Hint || imported[0].Hint != row.KeyHint {
		t.Errorf("hints differ: %q %q %q", imported[0].Hint, plain[0].Hint, row.KeyHint)
	}

	// An export that carries the plain fingerprint next to the full key
	// contradicts the keyed one: the import says so instead of storing a
	// fingerprint nothing joins.
	withPlain := strings.Replace(keyedRegistry, "    owner:", "    fingerprint: "+secret.Fingerprint(keyedAPIKey)+"\n    owner:", 1)
	_, _, err = keys.Parser{Fingerprinter: fpr}.ParseWithWarnings("r.yaml", []byte(withPlain), keys.FormatYAML)
	if err == nil || !strings.Contains(err.Error(), "does not match api_key") {
		t.Fatalf("plain fingerprint with a keyed parser: err %v, want a mismatch", err)
	}
	if strings.Contains(err.Error(), keyedAPIKey) {
		t.Fatal("error quotes the key")
	}
}

// TestKeyedImportJoinsIngest imports a registry and stores an access-log row
// with the same secret in ClickHouse, and checks that the row's
// key_fingerprint finds the registry key — and that it would not with a
// registry imported without the secret.
func TestKeyedImportJoinsIngest(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	fpr := secret.NewFingerprinter([]byte(keyedSecret))

	d := event.NewDecoder(0, 0)
	d.FingerprintKey = []byte(keyedSecret)
	row, err := d.Decode([]byte(accessEvent), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var rows event.Rows
	rows.Append(&row)

	for _, tt := range []struct {
		name   string
		parser keys.Parser
		joins  uint64
	}{
		{"same secret", keys.Parser{Fingerprinter: fpr}, 1},
		{"registry without the secret", keys.Parser{}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := testenv.ScratchDB(t, conn)
			ks, _, err := tt.parser.ParseWithWarnings("r.yaml", []byte(keyedRegistry), keys.FormatYAML)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := keys.NewStore(conn, db).Import(ctx, ks, keys.ImportOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := chsink.New(conn, db).Write(ctx, &rows, nil); err != nil {
				t.Fatal(err)
			}
			n := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log WHERE key_fingerprint IN (SELECT key_fingerprint FROM "+db+".keys FINAL WHERE key_id = 'key_keyed_1' AND deleted = 0)")
			if n != tt.joins {
				t.Fatalf("%d access_log rows join the registry key by fingerprint, want %d", n, tt.joins)
			}
			// No full key in the registry tables, whose rows the search
			// sees (the fingerprint the parser gave is there).
			dump := dumpTables(t, conn, db)
			if strings.Contains(dump, keyedAPIKey) {
				t.Fatal("the registry holds the full key")
			}
			if !strings.Contains(dump, tt.parser.Fingerprinter.Fingerprint(keyedAPIKey)) {
				t.Fatalf("the registry lacks the key's fingerprint:\n%s", dump)
			}
			if leaked := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log WHERE position(concat(key_id, key_hint, key_fingerprint, path, user_agent), ?) > 0", keyedAPIKey); leaked != 0 {
				t.Fatal("access_log holds the full key")
			}
		})
	}
}
