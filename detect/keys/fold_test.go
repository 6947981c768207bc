package keys

import "testing"

func TestFoldExpr(t *testing.T) {
	tests := []struct {
		name string
		ks   []Key
		want string
	}{
		{"no registry", nil, "key_id"},
		{"keys known only by fingerprint need no folding", []Key{{ID: "0123456789abcdef", Fingerprint: "0123456789abcdef"}}, "key_id"},
		{"fingerprints map to ids, quotes escaped", []Key{{ID: "key_a", Fingerprint: "aaaaaaaaaaaaaaaa"}, {ID: "key_o'b", Fingerprint: "bbbbbbbbbbbbbbbb"}, {ID: "key_c"}},
			`transform(key_id, ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb'], ['key_a', 'key_o\'b'], key_id)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FoldExpr(tt.ks, "key_id"); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}
