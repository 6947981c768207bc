package keys

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Import file formats.
const (
	FormatYAML = "yaml"
	FormatCSV  = "csv"
)

// importFields are the fields of an import entry (YAML keys, CSV columns).
var importFields = []string{
	"id", "api_key", "fingerprint", "hint", "env", "account_id", "owner", "status",
	"created_at", "rotated_at", "expires_at", "last_used_at", "allowed_cidrs",
}

// maxImportBytes bounds the size of an import file.
const maxImportBytes = 64 << 20

// ParseError is one problem in an import file. Line and Col are 1-based; Col
// is 0 when unknown (CSV). Key names the entry (its id, else its fingerprint,
// else "#N" for the N-th entry); it is empty for problems outside an entry.
// Msg never contains an API key.
type ParseError struct {
	File      string
	Line, Col int
	Key       string
	Msg       string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		if strings.HasPrefix(e.Key, "#") {
			fmt.Fprintf(&b, "key %s: ", e.Key)
		} else {
			fmt.Fprintf(&b, "key %q: ", e.Key)
		}
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in an import file, in file order. Its
// Error is one problem per line.
type ErrorList []*ParseError

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// FormatOf returns the import format for a file name: yaml for .yaml, .yml
// and .json (JSON is YAML), csv for .csv, else "".
func FormatOf(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return FormatYAML
	case ".csv":
		return FormatCSV
	}
	return ""
}

// Parser parses import files. Its zero value fingerprints full keys with
// plain SHA-256 (secret.Fingerprint); set Fingerprinter to the keyed one
// when auditwatch is configured with a fingerprint_key_file, so that the
// registry joins access_log rows fingerprinted with the same secret. The
// package functions ParseFile, Parse, … use the zero Parser.
type Parser struct {
	Fingerprinter secret.Fingerprinter
}

// ParseFile reads and parses an import file in format (FormatYAML or
// FormatCSV; "" guesses from the extension). See [Parse]; warnings are
// dropped: use [ParseFileWithWarnings] to show them.
func ParseFile(path, format string) ([]Key, error) {
	keys, _, err := ParseFileWithWarnings(path, format)
	return keys, err
}

// ParseFileWithWarnings is [ParseFile] that also returns the warnings of
// [ParseWithWarnings].
func ParseFileWithWarnings(path, format string) ([]Key, ErrorList, error) {
	return Parser{}.ParseFileWithWarnings(path, format)
}

// ParseFileWithWarnings is [ParseFileWithWarnings] with p's fingerprints.
func (p Parser) ParseFileWithWarnings(path, format string) ([]Key, ErrorList, error) {
	if format == "" {
		if format = FormatOf(path); format == "" {
			return nil, nil, fmt.Errorf("%s: cannot tell the format from the extension; give it (yaml or csv)", path)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read key registry: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxImportBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read key registry: %w", err)
	}
	if len(data) > maxImportBytes {
		return nil, nil, fmt.Errorf("%s: larger than %d MiB", path, maxImportBytes>>20)
	}
	return p.ParseWithWarnings(path, data, format)
}

// Parse parses and validates an import file named name (used in errors only).
// It returns every key, or an [ErrorList] with every problem in the file and
// no keys: callers import all or nothing. Full API keys given as api_key are
// reduced to fingerprint and hint; no error message quotes one. Warnings
// are dropped: use [ParseWithWarnings] to show them.
func Parse(name string, data []byte, format string) ([]Key, error) {
	keys, _, err := ParseWithWarnings(name, data, format)
	return keys, err
}

// ParseWithWarnings is [Parse] that also returns warnings: things in the
// file that look wrong but do not stop the import (a rotated_at before the
// key's created_at), each with its file:line:col and the entry's label (id,
// fingerprint or #N, never the key), in file order. Warnings are returned
// whether or not the file has errors.
func ParseWithWarnings(name string, data []byte, format string) ([]Key, ErrorList, error) {
	return Parser{}.ParseWithWarnings(name, data, format)
}

// ParseWithWarnings is [ParseWithWarnings] with p's fingerprints.
func (p Parser) ParseWithWarnings(name string, data []byte, format string) ([]Key, ErrorList, error) {
	var (
		entries []entry
		errs    ErrorList
	)
	switch format {
	case FormatYAML:
		entries, errs = readYAML(name, data)
	case FormatCSV:
		entries, errs = readCSV(name, data)
	default:
		return nil, nil, fmt.Errorf("import format %q: want yaml or csv", format)
	}
	keys, verrs, warns := validateEntries(name, entries, p.Fingerprinter)
	errs = append(errs, verrs...)
	sortByPos(warns)
	if len(errs) > 0 {
		sortByPos(errs)
		return nil, warns, errs
	}
	return keys, warns, nil
}

// sortByPos sorts l by line, then column, keeping the order of equals.
func sortByPos(l ErrorList) {
	slices.SortStableFunc(l, func(a, b *ParseError) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
}

// pos is a position in an import file; col is 0 when unknown.
type pos struct{ line, col int }

// value is one scalar of an entry with its position.
type value struct {
	s   string
	pos pos
}

// entry is an import entry as read, before validation. A field absent, null
// or empty is not in vals.
type entry struct {
	index    int // 1-based
	pos      pos
	vals     map[string]value
	cidrs    []value
	cidrsSet bool
	errs     []posError // problems found while reading
}

// --- YAML ---

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func readYAML(name string, data []byte) ([]entry, ErrorList) {
	var errs ErrorList
	fail := func(p pos, format string, args ...any) {
		errs = append(errs, &ParseError{File: name, Line: p.line, Col: p.col, Msg: secret.Redact(fmt.Sprintf(format, args...))})
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			fail(pos{line, 0}, "%s", m[2])
		} else {
			fail(pos{}, "%s", strings.TrimPrefix(msg, "yaml: "))
		}
		return nil, errs
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		fail(pos{}, "empty file: want a list of keys, or a mapping with a keys list")
		return nil, errs
	}
	root := resolve(doc.Content[0])
	var list *yaml.Node
	switch root.Kind {
	case yaml.SequenceNode:
		// A bare list of keys: [{id: …}, …] or "- id: …".
		list = root
	case yaml.MappingNode:
	default:
		fail(posOf(root), "want a list of keys, or a mapping with a keys list")
		return nil, errs
	}
	for i := 0; root.Kind == yaml.MappingNode && i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolve(root.Content[i+1])
		if k.Value != "keys" {
			fail(posOf(k), "unknown field %q (want keys)", k.Value)
			continue
		}
		if list != nil {
			fail(posOf(k), "keys given twice")
			continue
		}
		list = v
	}
	if list == nil {
		if len(errs) == 0 {
			fail(posOf(root), "no keys list")
		}
		return nil, errs
	}
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, errs // keys: (empty)
	}
	if list.Kind != yaml.SequenceNode {
		fail(posOf(list), "keys: want a list of keys")
		return nil, errs
	}
	var out []entry
	for i, n := range list.Content {
		n = resolve(n)
		e := entry{index: i + 1, pos: posOf(n), vals: map[string]value{}}
		if n.Kind != yaml.MappingNode {
			fail(posOf(n), "key #%d: want a mapping of fields", i+1)
			continue
		}
		bad := func(p pos, format string, args ...any) {
			e.errs = append(e.errs, posError{p, fmt.Sprintf(format, args...)})
		}
		seen := map[string]pos{}
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := n.Content[j], resolve(n.Content[j+1])
			field := k.Value
			if !slices.Contains(importFields, field) {
				bad(posOf(k), "unknown field %q (want one of %s)", field, strings.Join(importFields, ", "))
				continue
			}
			if p, dup := seen[field]; dup {
				bad(posOf(k), "field %s given twice (first at line %d)", field, p.line)
				continue
			}
			seen[field] = posOf(k)
			if field == "allowed_cidrs" {
				e.cidrsSet = true
				switch {
				case v.Kind == yaml.SequenceNode:
					for _, c := range v.Content {
						c = resolve(c)
						if c.Kind != yaml.ScalarNode {
							bad(posOf(c), "allowed_cidrs: want a list of CIDRs")
							continue
						}
						e.cidrs = append(e.cidrs, value{c.Value, posOf(c)})
					}
				case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
				case v.Kind == yaml.ScalarNode:
					e.cidrs = splitCIDRs(v.Value, posOf(v))
				default:
					bad(posOf(v), "allowed_cidrs: want a list of CIDRs")
				}
				continue
			}
			if v.Kind != yaml.ScalarNode {
				bad(posOf(v), "%s: want a single value", field)
				continue
			}
			if v.Tag == "!!null" || strings.TrimSpace(v.Value) == "" {
				continue
			}
			e.vals[field] = value{v.Value, posOf(v)}
		}
		out = append(out, e)
	}
	return out, errs
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func posOf(n *yaml.Node) pos { return pos{n.Line, n.Column} }

// splitCIDRs splits a list of CIDRs separated by ';', ',' or white space.
func splitCIDRs(s string, p pos) []value {
	var out []value
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		out = append(out, value{f, p})
	}
	return out
}

// --- CSV ---

func readCSV(name string, data []byte) ([]entry, ErrorList) {
	var errs ErrorList
	fail := func(line int, format string, args ...any) {
		errs = append(errs, &ParseError{File: name, Line: line, Msg: secret.Redact(fmt.Sprintf(format, args...))})
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.Comment = '#'
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			fail(0, "empty file: want a header row (%s)", strings.Join(importFields, ","))
		} else {
			fail(csvLine(err), "%s", csvMsg(err))
		}
		return nil, errs
	}
	hline, _ := r.FieldPos(0)
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case !slices.Contains(importFields, h):
			fail(hline, "unknown column %q (want %s)", h, strings.Join(importFields, ", "))
		case seen[h]:
			fail(hline, "column %s given twice", h)
		default:
			seen[h] = true
			cols[i] = h
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	var out []entry
	for index := 1; ; index++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(csvLine(err), "%s", csvMsg(err))
			break // the reader cannot resynchronise after a syntax error
		}
		line, _ := r.FieldPos(0)
		e := entry{index: index, pos: pos{line, 0}, vals: map[string]value{}}
		if len(rec) != len(cols) {
			e.errs = append(e.errs, posError{e.pos, fmt.Sprintf("%d fields, the header has %d", len(rec), len(cols))})
			rec = rec[:min(len(rec), len(cols))]
		}
		for i, v := range rec {
			fl, _ := r.FieldPos(i)
			if cols[i] == "allowed_cidrs" {
				e.cidrsSet = true
				e.cidrs = splitCIDRs(v, pos{fl, 0})
				continue
			}
			if strings.TrimSpace(v) != "" {
				e.vals[cols[i]] = value{v, pos{fl, 0}}
			}
		}
		out = append(out, e)
	}
	return out, errs
}

func csvLine(err error) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Line
	}
	return 0
}

func csvMsg(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// --- validation ---

// validateEntries turns entries into keys, reporting every problem and every
// warning.
func validateEntries(name string, entries []entry, fpr secret.Fingerprinter) ([]Key, ErrorList, ErrorList) {
	var errs, warns ErrorList
	keys := make([]Key, 0, len(entries))
	firstID := map[string]pos{}
	firstFP := map[string]string{}
	for _, e := range entries {
		k, label, ferrs, fwarns := validateEntry(e, fpr)
		for _, fe := range ferrs {
			errs = append(errs, &ParseError{File: name, Line: fe.pos.line, Col: fe.pos.col, Key: label, Msg: secret.Redact(fe.msg)})
		}
		for _, fw := range fwarns {
			warns = append(warns, &ParseError{File: name, Line: fw.pos.line, Col: fw.pos.col, Key: label, Msg: secret.Redact(fw.msg)})
		}
		if k.ID != "" {
			if p, dup := firstID[k.ID]; dup {
				errs = append(errs, &ParseError{File: name, Line: e.pos.line, Col: e.pos.col, Key: label, Msg: fmt.Sprintf("duplicate key (also at line %d)", p.line)})
				continue
			}
			firstID[k.ID] = e.pos
		}
		if len(ferrs) > 0 {
			continue
		}
		if k.Fingerprint != "" {
			if other, dup := firstFP[k.Fingerprint]; dup {
				errs = append(errs, &ParseError{File: name, Line: e.pos.line, Col: e.pos.col, Key: label, Msg: fmt.Sprintf("same API key (fingerprint %s) as key %q", k.Fingerprint, other)})
				continue
			}
			firstFP[k.Fingerprint] = k.ID
		}
		keys = append(keys, k)
	}
	return keys, errs, warns
}

// posError is a fieldError placed in the file.
type posError struct {
	pos pos
	msg string
}

// validateEntry checks one entry and builds its Key. label names the entry
// in errors and warnings.
func validateEntry(e entry, fpr secret.Fingerprinter) (k Key, label string, errs, warns []posError) {
	get := func(f string) string { return strings.TrimSpace(e.vals[f].s) }
	at := func(f string) pos {
		if v, ok := e.vals[f]; ok {
			return v.pos
		}
		return e.pos
	}
	add := func(fe fieldError) { errs = append(errs, posError{at(fe.field), fe.field + ": " + fe.msg}) }
	errs = append(errs, e.errs...)

	m := material{apiKey: get("api_key"), fingerprint: get("fingerprint"), hint: get("hint"), env: get("env")}
	fp, hint, env, ferrs := m.resolve(fpr, true)
	for _, fe := range ferrs {
		add(fe)
	}
	k = Key{ID: get("id"), Fingerprint: fp, Hint: hint, Env: env, AccountID: get("account_id"), Owner: get("owner"), Status: get("status")}
	label = k.ID
	switch {
	case label != "" && secret.Redact(label) != label:
		label = "#" + strconv.Itoa(e.index)
	case label == "" && fp != "":
		label = fp
	case label == "":
		label = "#" + strconv.Itoa(e.index)
	}
	for _, f := range []struct {
		field, v string
		noSpace  bool
	}{{"id", k.ID, true}, {"account_id", k.AccountID, false}, {"owner", k.Owner, false}} {
		if fe := checkText(f.field, f.v, f.noSpace); fe != nil {
			add(*fe)
		}
	}
	if k.ID == "" {
		if k.Fingerprint == "" && m.apiKey == "" && m.fingerprint == "" {
			errs = append(errs, posError{e.pos, "id, api_key or fingerprint required"})
		}
		k.ID = k.Fingerprint
	}
	if k.Status == "" {
		k.Status = StatusActive
	} else if !validStatus(k.Status) {
		add(fieldError{"status", "want active, revoked or expired, got " + quote(k.Status)})
	}
	if v := get("created_at"); v == "" {
		errs = append(errs, posError{e.pos, "created_at: required"})
	} else if t, err := parseImportTime(v); err != nil {
		add(fieldError{"created_at", err.Error()})
	} else {
		k.CreatedAt = t
	}
	for _, f := range []struct {
		field string
		dst   **time.Time
	}{{"rotated_at", &k.RotatedAt}, {"expires_at", &k.ExpiresAt}, {"last_used_at", &k.LastUsedAt}} {
		v := get(f.field)
		if v == "" {
			continue
		}
		t, err := parseImportTime(v)
		if err != nil {
			add(fieldError{f.field, err.Error()})
			continue
		}
		*f.dst = &t
	}
	if k.RotatedAt != nil && !k.CreatedAt.IsZero() && k.RotatedAt.Before(k.CreatedAt) {
		// Likely swapped columns or a time zone slip; the key's age counts
		// from created_at either way (Key.LastRotation), so import it.
		warns = append(warns, posError{at("rotated_at"), fmt.Sprintf("rotated_at %s is before created_at %s; the key's rotation age counts from created_at",
			k.RotatedAt.Format(time.RFC3339), k.CreatedAt.Format(time.RFC3339))})
	}
	for _, c := range e.cidrs {
		p, err := ParseCIDR(c.s)
		if err != nil {
			errs = append(errs, posError{c.pos, "allowed_cidrs: " + err.Error()})
			continue
		}
		k.AllowedCIDRs = append(k.AllowedCIDRs, p)
	}
	k.AllowedCIDRs = normalizeCIDRs(k.AllowedCIDRs)
	return k, label, errs, warns
}

// Epoch seconds accepted in import files: from 2000 (a smaller number is
// more likely a date written as digits, like 20250110, or 0 for "none") to
// ClickHouse's DateTime limit. From epochMillisFrom on, the number is taken
// for milliseconds and rejected.
var (
	epochRe         = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	epochMin        = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	epochMillisFrom = int64(100_000_000_000) // year 5138 in seconds; 1973 in milliseconds
)

// parseImportTime parses a time of an import file: the layouts of
// parseTime, or epoch seconds (an integer or a numeric string; a fraction
// is ignored, like that of an RFC 3339 time).
func parseImportTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if !epochRe.MatchString(s) {
		t, err := parseTime(s)
		if err != nil && !slices.ContainsFunc(timeLayouts, func(l string) bool { _, e := time.Parse(l, s); return e == nil }) {
			return time.Time{}, fmt.Errorf("%s is not an RFC 3339 time, a date (2006-01-02) or epoch seconds", quote(s))
		}
		return t, err
	}
	whole, _, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	switch {
	case err != nil || n >= 1000*epochMillisFrom:
		return time.Time{}, fmt.Errorf("%s is out of range (1970 to 2106)", s)
	case n >= epochMillisFrom:
		return time.Time{}, fmt.Errorf("%s looks like epoch milliseconds; want epoch seconds", s)
	case n < epochMin:
		return time.Time{}, fmt.Errorf("%s as epoch seconds is before 2000; want epoch seconds, RFC 3339 or a date (leave the field empty for none)", s)
	}
	t := time.Unix(n, 0).UTC()
	if !t.Before(maxTime) {
		return time.Time{}, fmt.Errorf("%s is out of range (1970 to 2106)", s)
	}
	return t, nil
}
