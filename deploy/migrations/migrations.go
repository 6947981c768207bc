// Package migrations holds auditwatch's ClickHouse schema as versioned SQL
// files and applies them idempotently.
//
// Each file sql/NNNN_name.sql is a Go text/template rendered for one server
// dialect: {{.DB}} is the database, {{lc "String"}} is LowCardinality(String)
// where the server supports it and String on old servers such as 18.16.
// Statements end with a ';' at the end of a line. Every statement must be
// idempotent (IF NOT EXISTS), so a migration interrupted half-way can be run
// again.
package migrations

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

//go:embed sql/*.sql
var files embed.FS

// Dialect says which ClickHouse features the target server has, and whether
// the schema is for a single server or a cluster.
type Dialect struct {
	// LowCardinality is true on servers where LowCardinality(T) is a stable
	// type (19.x and later, by default since 20.x).
	LowCardinality bool
	// Cluster, when not empty, renders the schema for the ClickHouse cluster
	// of that name (<remote_servers> in the servers' configuration; see
	// docs/cluster.md): every statement runs ON CLUSTER, each table's data
	// lives in a Replicated*MergeTree table NAME_local (ZooKeeper path
	// /clickhouse/tables/{shard}/DB/NAME_local, replica {replica}), and NAME
	// is a Distributed table over it, so that readers and writers keep using
	// the names of the single-server schema. Empty renders the single-server
	// schema, byte for byte as before cluster support.
	Cluster string
}

// DialectFor returns the dialect of a server from its version string, e.g.
// "18.16.1" or "25.8.2.29".
func DialectFor(version string) (Dialect, error) {
	major, err := strconv.Atoi(strings.SplitN(version, ".", 2)[0])
	if err != nil {
		return Dialect{}, fmt.Errorf("parse clickhouse version %q: %w", version, err)
	}
	return Dialect{LowCardinality: major >= 20}, nil
}

// Current is the dialect of current ClickHouse releases.
var Current = Dialect{LowCardinality: true}

// Migration is one versioned schema change.
type Migration struct {
	Version    int
	Name       string
	Statements []string
	Checksum   string // of the rendered SQL
	// Cluster is the cluster the statements were rendered for (Dialect.Cluster);
	// Apply creates the database and schema_migrations on it too.
	Cluster string
}

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Load renders every migration for db and dialect, in version order.
func Load(db string, d Dialect) ([]Migration, error) {
	if !validIdent(db) {
		return nil, fmt.Errorf("load migrations: database name %q: want letters, digits and underscores", db)
	}
	if d.Cluster != "" && !validIdent(d.Cluster) {
		return nil, fmt.Errorf("load migrations: cluster name %q: want letters, digits and underscores", d.Cluster)
	}
	entries, err := fs.ReadDir(files, "sql")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	funcs := template.FuncMap{
		"lc": func(t string) string {
			if d.LowCardinality {
				return "LowCardinality(" + t + ")"
			}
			return t
		},
		// ifNotExists is "IF NOT EXISTS " for ALTER … ADD COLUMN where the
		// server has it; on 18.16 Apply treats "already exists" as done.
		"ifNotExists": func() string {
			if d.LowCardinality {
				return "IF NOT EXISTS "
			}
			return ""
		},
	}
	for name, f := range clusterFuncs(db, d.Cluster, d) {
		funcs[name] = f
	}
	var out []Migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("load migrations: file %s: name must be NNNN_name.sql", e.Name())
		}
		src, err := fs.ReadFile(files, path.Join("sql", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		tmpl, err := template.New(e.Name()).Funcs(funcs).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, struct{ DB string }{db}); err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		if d.Cluster != "" && !d.LowCardinality {
			text := withoutComments(buf.String())
			buf.Reset()
			buf.WriteString(text)
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(buf.Bytes())
		out = append(out, Migration{Version: v, Name: m[2], Statements: Split(buf.String()), Checksum: hex.EncodeToString(sum[:8]), Cluster: d.Cluster})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("load migrations: version %d used twice", out[i].Version)
		}
	}
	return out, nil
}

// Split cuts SQL into statements at each ';' that ends a line, dropping
// comment-only lines and empty statements.
func Split(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		if strings.HasSuffix(trimmed, ";") {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(line, " \t\r"), ";"))
			if s := strings.TrimSpace(cur.String()); s != "" {
				out = append(out, s)
			}
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

func validIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
