package difftest

import (
	"encoding/json"
	"strings"
	"testing"
)

func result(t *testing.T, meta [][2]string, rows string) Result {
	t.Helper()
	var data [][]any
	dec := json.NewDecoder(strings.NewReader(rows))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		t.Fatal(err)
	}
	return Result{Meta: meta, Data: data}
}

func TestCompare(t *testing.T) {
	two := [][2]string{{"a", "String"}, {"n", "UInt64"}}
	tests := []struct {
		name      string
		meta      [][2]string
		a, b      string
		wantEqual bool
		wantIn    string
	}{
		{"same rows, other order", two, `[["x","1"],["y","2"]]`, `[["y",2],["x",1]]`, true, ""},
		{"quoted and bare 64-bit integers", two, `[["x","18446744073709551615"]]`, `[["x",18446744073709551615]]`, true, ""},
		{"bool against UInt8", [][2]string{{"b", "UInt8"}}, `[[1],[0]]`, `[[true],[false]]`, true, ""},
		{"floats summed in another order", [][2]string{{"f", "Float64"}}, `[[0.30000000000000004]]`, `[[0.3]]`, true, ""},
		{"a row missing", two, `[["x","1"],["y","2"]]`, `[["x",1]]`, false, "2 rows vs 1 rows"},
		{"a value differs", two, `[["x","1"]]`, `[["x",2]]`, false, "only in the first (1)"},
		{"duplicates count", two, `[["x","1"],["x","1"]]`, `[["x",1]]`, false, "2 rows vs 1 rows"},
		{"column count", two, `[["x","1"]]`, `[["x"]]`, false, ""},
		{"topK as a set", [][2]string{{"k", "String"}, {"topK(3)(route)", "Array(String)"}},
			`[["k",["/a","/b","/c"]]]`, `[["k",["/c","/a","/b"]]]`, true, ""},
		{"topK mostly different", [][2]string{{"k", "String"}, {"topK(3)(route)", "Array(String)"}},
			`[["k",["/a","/b","/c"]]]`, `[["k",["/a","/x","/y"]]]`, false, "topK"},
		{"t-digest within tolerance", [][2]string{{"quantilesTDigestMerge(0.5, 0.95)(latency_ms)", "Array(Float32)"}},
			`[[[10.0, 30.0]]]`, `[[[11.0, 28.0]]]`, true, ""},
		{"t-digest far off", [][2]string{{"quantilesTDigestMerge(0.5, 0.95)(latency_ms)", "Array(Float32)"}},
			`[[[10.0, 30.0]]]`, `[[[10.0, 90.0]]]`, false, "approximate"},
		{"t-digest of a few small values: shape only", [][2]string{{"quantilesTDigestMerge(0.5, 0.95)(latency_ms)", "Array(Float32)"}},
			`[[[1.88, 2.83]]]`, `[[[0.93, 2.83]]]`, true, ""},
		{"t-digest: another number of quantiles", [][2]string{{"quantilesTDigestMerge(0.5, 0.95)(latency_ms)", "Array(Float32)"}},
			`[[[1.88, 2.83]]]`, `[[[0.93]]]`, false, "approximate"},
		{"exact quantiles are exact", [][2]string{{"quantileExact(0.5)(x)", "Float64"}}, `[[10.0]]`, `[[11.0]]`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := result(t, tt.meta, tt.a)
			bm := tt.meta
			if tt.name == "column count" {
				bm = tt.meta[:1]
			}
			b := result(t, bm, tt.b)
			got := Compare(a, b)
			if (got == "") != tt.wantEqual {
				t.Fatalf("Compare = %q, want equal %v", got, tt.wantEqual)
			}
			if !strings.Contains(got, tt.wantIn) {
				t.Errorf("Compare = %q, want it to mention %q", got, tt.wantIn)
			}
		})
	}
	if got := Compare(Result{Error: "boom"}, Result{}); !strings.Contains(got, "boom") {
		t.Errorf("an error on one side must be reported, got %q", got)
	}
}

func TestEmptyInsert(t *testing.T) {
	tests := map[string]string{
		"INSERT INTO db.t (a, b) FORMAT Native": "INSERT INTO db.t (a, b) SELECT a, b FROM db.t LIMIT 0",
		"INSERT INTO db.t (a) VALUES":           "INSERT INTO db.t (a) SELECT a FROM db.t LIMIT 0",
		"INSERT INTO db.t VALUES":               "INSERT INTO db.t SELECT * FROM db.t LIMIT 0",
		"INSERT INTO db.t SELECT 1":             "INSERT INTO db.t SELECT 1",
	}
	for in, want := range tests {
		if got := emptyInsert(in); got != want {
			t.Errorf("emptyInsert(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatementKind(t *testing.T) {
	for q, want := range map[string]string{
		"SELECT 1": "select", " (SELECT 1)": "select", "WITH x AS (SELECT 1) SELECT * FROM x": "select",
		"INSERT INTO t FORMAT Native": "insert", "ALTER TABLE t DROP PARTITION 20261101": "other", "SYSTEM FLUSH LOGS": "other",
	} {
		if got := (Statement{Query: q}).Kind(); got != want {
			t.Errorf("Kind(%q) = %s, want %s", q, got, want)
		}
	}
}
