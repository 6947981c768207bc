package keys

import "strings"

// FoldExpr returns a ClickHouse expression over the access-log column col
// (key_id) that names every registered key by its registry id: rows where
// the gateway did not know the id carry the key's fingerprint in key_id, and
// the expression maps those fingerprints to their ids (other values pass
// through). History is never rewritten: a registry change takes effect in
// the next query. With no fingerprint to fold it is col itself.
func FoldExpr(ks []Key, col string) string {
	var fps, ids []string
	for i := range ks {
		if k := &ks[i]; k.Fingerprint != "" && k.Fingerprint != k.ID {
			fps, ids = append(fps, sqlString(k.Fingerprint)), append(ids, sqlString(k.ID))
		}
	}
	if len(fps) == 0 {
		return col
	}
	return "transform(" + col + ", [" + strings.Join(fps, ", ") + "], [" + strings.Join(ids, ", ") + "], " + col + ")"
}

// sqlString quotes s as a ClickHouse string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
