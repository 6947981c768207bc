package difftest

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Compare reports how b's answer differs from a's, "" when they agree.
//
// Where the versions differ on purpose the values are normalised first:
// 64-bit integers (quoted by 18.16's JSON, bare in current ClickHouse),
// Bool (current) against UInt8 (18.16), and floats (compared to 6
// significant digits: aggregate functions may sum in another order). Column
// types are not compared (LowCardinality, Bool and the like differ by
// design), column counts are. Rows are compared as multisets: a statement
// without ORDER BY may return them in any order, and ties in ORDER BY are
// unordered too.
//
// Approximate aggregates are compared for what they promise, recognised by
// their column name in a's answer (an unaliased expression): topK's values
// as a set sharing at least TopKOverlap of its values (which of several
// near-equal counts makes the list, and their order, is not defined), and
// quantiles of a t-digest or a sample within ApproxTolerance (their
// algorithms changed between the versions).
func Compare(a, b Result) string {
	switch {
	case a.Error != "" || b.Error != "":
		return fmt.Sprintf("error: %q vs %q", a.Error, b.Error)
	case len(a.Meta) != len(b.Meta):
		return fmt.Sprintf("%d columns %v vs %d columns %v", len(a.Meta), a.Meta, len(b.Meta), b.Meta)
	}
	kinds := columnKinds(a.Meta)
	ra, rb := canonRows(a.Data, kinds), canonRows(b.Data, kinds)
	ka, kb := keys(ra), keys(rb)
	if !slices.Equal(ka, kb) {
		onlyA, onlyB := difference(ka, kb), difference(kb, ka)
		return fmt.Sprintf("%d rows vs %d rows; only in the first (%d): %s; only in the second (%d): %s",
			len(ka), len(kb), len(onlyA), sample(onlyA), len(onlyB), sample(onlyB))
	}
	for i := range ra {
		for j := range ra[i].approx {
			if !near(ra[i].approx[j], rb[i].approx[j]) {
				return fmt.Sprintf("row %s: approximate values %v vs %v differ by more than %.0f%%", ra[i].key, ra[i].approx[j], rb[i].approx[j], ApproxTolerance*100)
			}
		}
		for j := range ra[i].sets {
			if !overlap(ra[i].sets[j], rb[i].sets[j]) {
				return fmt.Sprintf("row %s: topK %v vs %v share less than %.0f%% of their values", ra[i].key, ra[i].sets[j], rb[i].sets[j], TopKOverlap*100)
			}
		}
	}
	return ""
}

// TopKOverlap is the share of values two topK lists of the versions must
// have in common.
const TopKOverlap = 0.7

func overlap(a, b []string) bool {
	n := max(len(a), len(b))
	if n == 0 {
		return true
	}
	common := len(a) - len(difference(a, b))
	return float64(common) >= TopKOverlap*float64(n)
}

// ApproxTolerance is the relative difference allowed between the versions'
// approximate quantiles (t-digest, reservoir sample) where a digest has
// seen enough values (ApproxMinValue or more): the t-digests of 18.16 and
// current ClickHouse differ most on small samples — p50 1.88 against 0.93
// ms was seen for a key with two requests in an hour — and within a few
// percent on large ones. Below that only the shape is compared (as many
// quantiles, none negative where the other is not): the check proves the
// statement runs and answers alike, not the digest's precision.
const ApproxTolerance = 0.5

// ApproxMinValue: quantiles of at least this value (milliseconds, in
// practice) are compared within ApproxTolerance.
const ApproxMinValue = 5.0

type colKind uint8

const (
	exact  colKind = iota
	asSet          // topK: the values, not their order
	approx         // approximate quantiles: numbers within ApproxTolerance
)

func columnKinds(meta [][2]string) []colKind {
	out := make([]colKind, len(meta))
	for i, m := range meta {
		name := strings.ToLower(m[0])
		switch {
		case strings.HasPrefix(name, "topk"):
			out[i] = asSet
		case strings.HasPrefix(name, "quantile") && !strings.HasPrefix(name, "quantileexact") && !strings.HasPrefix(name, "quantilesexact"):
			out[i] = approx
		}
	}
	return out
}

type canonRow struct {
	key    string      // every exact column
	approx [][]float64 // the approximate quantiles' numbers
	sets   [][]string  // the topK columns' values, sorted
}

func canonRows(rows [][]any, kinds []colKind) []canonRow {
	out := make([]canonRow, len(rows))
	for i, r := range rows {
		parts := make([]string, len(r))
		var ap [][]float64
		var sets [][]string
		for j, v := range r {
			k := exact
			if j < len(kinds) {
				k = kinds[j]
			}
			switch k {
			case asSet:
				parts[j] = "{…}"
				sets = append(sets, setOf(v))
			case approx:
				parts[j] = "~"
				ap = append(ap, numbers(v))
			default:
				parts[j] = canon(v)
			}
		}
		out[i] = canonRow{key: "[" + strings.Join(parts, ",") + "]", approx: ap, sets: sets}
	}
	slices.SortFunc(out, func(x, y canonRow) int {
		if c := strings.Compare(x.key, y.key); c != 0 {
			return c
		}
		return slices.CompareFunc(x.approx, y.approx, func(p, q []float64) int { return slices.Compare(p, q) })
	})
	return out
}

func keys(rows []canonRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.key
	}
	return out
}

func setOf(v any) []string {
	arr, ok := v.([]any)
	if !ok {
		return []string{canon(v)}
	}
	parts := make([]string, len(arr))
	for i, e := range arr {
		parts[i] = canon(e)
	}
	slices.Sort(parts)
	return parts
}

func numbers(v any) []float64 {
	var out []float64
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case json.Number:
			f, _ := strconv.ParseFloat(string(x), 64)
			out = append(out, f)
		case string:
			f, _ := strconv.ParseFloat(x, 64)
			out = append(out, f)
		}
	}
	walk(v)
	return out
}

func near(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i] < 0) != (b[i] < 0) {
			return false
		}
		m := math.Max(math.Abs(a[i]), math.Abs(b[i]))
		if m >= ApproxMinValue && math.Abs(a[i]-b[i]) > ApproxTolerance*m {
			return false
		}
	}
	return true
}

// canon renders a value in the form both versions agree on.
func canon(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case bool:
		if x {
			return "1"
		}
		return "0"
	case json.Number:
		return canonNumber(string(x))
	case string:
		if isInteger(x) {
			return canonNumber(x)
		}
		return strconv.Quote(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = canon(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = strconv.Quote(k) + ":" + canon(x[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprintf("%v", v)
}

func isInteger(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
	}
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func canonNumber(s string) string {
	if isInteger(s) {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', 6, 64)
}

// difference returns the elements of a (sorted) missing from b (sorted),
// with multiplicity.
func difference(a, b []string) []string {
	var out []string
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			j++
			continue
		}
		out = append(out, x)
	}
	return out
}

func sample(rows []string) string {
	const n = 3
	if len(rows) > n {
		return strings.Join(rows[:n], " | ") + fmt.Sprintf(" | … %d more", len(rows)-n)
	}
	return strings.Join(rows, " | ")
}
