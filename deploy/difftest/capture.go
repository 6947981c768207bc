// Package difftest proves the SQL auditwatch sends to ClickHouse on two
// engines: the ClickHouse 18.16 test server and current ClickHouse (chdb,
// in-process, through deploy/chdb/diff.py).
//
// A Recorder is a driver.Conn that tags every statement with a query id;
// the server's query_log then holds each statement's final text, with the
// values clickhouse-go bound into it client-side. A Case collects what one
// flow of the product ran (its statements and the database it ran in); Run
// replays every case in chdb on a copy of the same data and compares each
// SELECT's answer with 18.16's.
package difftest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Recorder is a driver.Conn whose statements carry query ids "PREFIX_NNNNNN"
// (in the order they were sent), so that Captured can read them back from
// system.query_log. Its connection must have log_queries = 1 (OpenRecorder
// sets it).
type Recorder struct {
	driver.Conn
	prefix string
	n      atomic.Int64
}

// NewRecorder wraps conn; prefix must be unique to the flow (letters,
// digits and '_').
func NewRecorder(conn driver.Conn, prefix string) *Recorder {
	return &Recorder{Conn: conn, prefix: prefix}
}

// OpenRecorder connects to addr with db as the session database and
// log_queries = 1, and wraps the connection in a Recorder.
func OpenRecorder(addr, db, prefix string) (*Recorder, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:     []string{addr},
		Auth:     clickhouse.Auth{Database: db},
		Settings: clickhouse.Settings{"log_queries": 1},
	})
	if err != nil {
		return nil, fmt.Errorf("open recorder connection: %w", err)
	}
	return NewRecorder(conn, prefix), nil
}

// Prefix returns the query-id prefix of r's statements.
func (r *Recorder) Prefix() string { return r.prefix }

// Sent returns how many statements r has sent.
func (r *Recorder) Sent() int { return int(r.n.Load()) }

func (r *Recorder) tag(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithQueryID(fmt.Sprintf("%s_%06d", r.prefix, r.n.Add(1))))
}

func (r *Recorder) Select(ctx context.Context, dest any, query string, args ...any) error {
	return r.Conn.Select(r.tag(ctx), dest, query, args...)
}

func (r *Recorder) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	return r.Conn.Query(r.tag(ctx), query, args...)
}

func (r *Recorder) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	return r.Conn.QueryRow(r.tag(ctx), query, args...)
}

func (r *Recorder) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	return r.Conn.PrepareBatch(r.tag(ctx), query, opts...)
}

func (r *Recorder) Exec(ctx context.Context, query string, args ...any) error {
	return r.Conn.Exec(r.tag(ctx), query, args...)
}

func (r *Recorder) AsyncInsert(ctx context.Context, query string, wait bool, args ...any) error {
	return r.Conn.AsyncInsert(r.tag(ctx), query, wait, args...)
}

// Statement is one statement as the server received it.
type Statement struct {
	ID    string // query id
	Query string // final text, values bound
	Error string // the server's exception, when it failed on 18.16
	// Settings are the query's own settings that change what or how much
	// it may do (readonly and the limits of sql rules), as sent.
	Settings map[string]string
}

// replayedSettings are the per-query settings replayed on the other
// engine: the ones that decide whether a statement may run at all.
var replayedSettings = []string{"readonly", "max_execution_time", "max_memory_usage", "max_rows_to_read", "max_result_rows"}

// WithSettings returns the query with its Settings as a SETTINGS clause,
// for an engine that cannot take them apart from the text (chdb).
func (s Statement) WithSettings() string {
	if len(s.Settings) == 0 {
		return s.Query
	}
	keys := make([]string, 0, len(s.Settings))
	for k := range s.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " = " + s.Settings[k]
	}
	return strings.TrimRight(strings.TrimSpace(s.Query), ";") + "\nSETTINGS " + strings.Join(parts, ", ")
}

// Kind classifies the statement by its first keyword: select (SELECT or
// WITH: compared), insert, or other (DDL, ALTER, SYSTEM, …).
func (s Statement) Kind() string {
	q := strings.TrimLeft(s.Query, " \t\r\n(")
	word := strings.ToUpper(q[:min(len(q), 7)])
	switch {
	case strings.HasPrefix(word, "SELECT"), strings.HasPrefix(word, "WITH"):
		return "select"
	case strings.HasPrefix(word, "INSERT"):
		return "insert"
	}
	return "other"
}

// Captured returns the statements whose query id starts with prefix_, in
// the order they were sent, from the query_log of the server admin is
// connected to. The server logs a statement as it finishes, which can be a
// moment after the client read its last row: Captured flushes the log until
// it holds want statements, for up to 10 seconds.
func Captured(ctx context.Context, admin driver.Conn, prefix string, want int) ([]Statement, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := captured(ctx, admin, prefix)
		if err != nil || len(got) >= want || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func captured(ctx context.Context, admin driver.Conn, prefix string) ([]Statement, error) {
	if err := admin.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return nil, fmt.Errorf("flush query_log: %w", err)
	}
	// type: 2 finished, 3 failed before start, 4 failed while running.
	rows, err := admin.Query(ctx, `SELECT query_id, any(query), anyIf(exception, type IN (3, 4)), any(Settings.Names), any(Settings.Values)
		FROM system.query_log
		WHERE query_id LIKE ? AND type IN (2, 3, 4)
		GROUP BY query_id ORDER BY query_id`, strings.ReplaceAll(prefix, "_", `\_`)+`\_%`)
	if err != nil {
		return nil, fmt.Errorf("read query_log: %w", err)
	}
	defer rows.Close()
	var out []Statement
	for rows.Next() {
		var s Statement
		var names, values []string
		if err := rows.Scan(&s.ID, &s.Query, &s.Error, &names, &values); err != nil {
			return nil, fmt.Errorf("read query_log: %w", err)
		}
		for i, n := range names {
			if slices.Contains(replayedSettings, n) && i < len(values) {
				if s.Settings == nil {
					s.Settings = map[string]string{}
				}
				s.Settings[n] = values[i]
			}
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
