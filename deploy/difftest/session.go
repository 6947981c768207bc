package difftest

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/migrations"
)

// Session collects cases on the 18.16 server, then replays them in chdb.
type Session struct {
	Admin driver.Conn // reads query_log
	HTTP  HTTP        // the same server, for answers in JSON
	cases []*recorded
}

type recorded struct {
	name, db string
	stmts    []Statement
	answers  map[string]Result // 18.16's answer to each select
	loads    []Load
	ordered  bool // replay in the order sent, on loads taken before the flow
}

// Add records a case: the statements r sent (read from query_log), 18.16's answer to each SELECT on db as it is now, and
// db's data. Call it once the flow is done, before db is dropped: every
// SELECT is answered again on the final data, as chdb will answer it.
// A statement that failed on 18.16 is an error.
func (s *Session) Add(ctx context.Context, name, db string, r *Recorder) error {
	return s.add(ctx, name, db, r, nil, false)
}

// Snapshot returns db's data as Add records it, for AddOrdered.
func (s *Session) Snapshot(ctx context.Context, db string) ([]Load, error) {
	return s.HTTP.Dump(ctx, db)
}

// AddOrdered records a flow that changes data (retention, say): chdb starts
// from before (a Snapshot taken before the flow) and runs the statements in
// the order sent. Only SELECTs sent after the flow's last change can agree
// with 18.16's answers, which are read when AddOrdered is called: end the
// flow with the reads to compare.
func (s *Session) AddOrdered(ctx context.Context, name, db string, r *Recorder, before []Load) error {
	return s.add(ctx, name, db, r, before, true)
}

func (s *Session) add(ctx context.Context, name, db string, r *Recorder, loads []Load, ordered bool) error {
	stmts, err := Captured(ctx, s.Admin, r.Prefix(), r.Sent())
	if err != nil {
		return err
	}
	if len(stmts) != r.Sent() {
		return fmt.Errorf("case %s: %d statements sent with prefix %s, %d in query_log", name, r.Sent(), r.Prefix(), len(stmts))
	}
	c := &recorded{name: name, db: db, stmts: stmts, answers: map[string]Result{}, loads: loads, ordered: ordered}
	for _, st := range stmts {
		if st.Error != "" {
			return fmt.Errorf("case %s: statement %s failed on 18.16: %s\n%s", name, st.ID, st.Error, st.Query)
		}
		if st.Kind() == "select" {
			c.answers[st.ID] = s.HTTP.Query(ctx, db, st.Query)
		}
	}
	if !ordered {
		if c.loads, err = s.HTTP.Dump(ctx, db); err != nil {
			return err
		}
	}
	s.cases = append(s.cases, c)
	return nil
}

// Statements returns how many statements of each kind the cases hold, and
// under "readonly" how many ran with a readonly setting (sql rules).
func (s *Session) Statements() map[string]int {
	n := map[string]int{}
	for _, c := range s.cases {
		for _, st := range c.stmts {
			n[st.Kind()]++
			if st.Settings["readonly"] != "" {
				n["readonly"]++
			}
		}
	}
	return n
}

// Problem is a statement that failed on current ClickHouse or whose answer
// differs from 18.16's.
type Problem struct {
	Case, ID, Query string
	What            string // what differs, or chdb's error
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %s: %s\n  statement: %s", p.Case, p.ID, p.What, oneLine(p.Query, 600))
}

// Replay runs every case in chdb, with the current-dialect schema and the
// recorded data: first every SELECT (answers compared with 18.16's), then
// every INSERT (with no rows: the table and its column list must exist) and
// other statement (DDL, ALTER … DROP PARTITION) in the order sent; an
// ordered case (AddOrdered) runs its statements in the order sent. It
// returns chdb's version and the problems found.
func (s *Session) Replay(ctx context.Context, python, script string) (string, []Problem, error) {
	var job []ChdbCase
	for _, c := range s.cases {
		ms, err := migrations.Load(c.db, migrations.Current)
		if err != nil {
			return "", nil, err
		}
		// Cases may share a database (a flow, then a change of its data):
		// each starts from its own copy.
		cc := ChdbCase{Name: c.name, Setup: []string{"DROP DATABASE IF EXISTS " + c.db, "CREATE DATABASE " + c.db}, Loads: c.loads}
		for _, m := range ms {
			cc.Setup = append(cc.Setup, m.Statements...)
		}
		cc.Setup = append(cc.Setup, "USE "+c.db)
		var later []ChdbQuery
		for _, st := range c.stmts {
			switch {
			case c.ordered && st.Kind() == "insert":
				cc.Queries = append(cc.Queries, ChdbQuery{ID: st.ID, SQL: emptyInsert(st.Query)})
			case c.ordered:
				cc.Queries = append(cc.Queries, ChdbQuery{ID: st.ID, SQL: st.WithSettings()})
			case st.Kind() == "select":
				cc.Queries = append(cc.Queries, ChdbQuery{ID: st.ID, SQL: st.WithSettings()})
			case st.Kind() == "insert":
				later = append(later, ChdbQuery{ID: st.ID, SQL: emptyInsert(st.Query)})
			default:
				later = append(later, ChdbQuery{ID: st.ID, SQL: st.WithSettings()})
			}
		}
		cc.Queries = append(cc.Queries, later...)
		job = append(job, cc)
	}
	ans, err := RunChdb(ctx, python, script, job)
	if err != nil {
		return "", nil, err
	}
	var problems []Problem
	for _, c := range s.cases {
		ca, ok := ans.Cases[c.name]
		switch {
		case !ok:
			problems = append(problems, Problem{Case: c.name, What: "no answer from chdb"})
			continue
		case ca.Error != "":
			problems = append(problems, Problem{Case: c.name, What: "schema or data refused by current ClickHouse: " + ca.Error})
			continue
		}
		for _, st := range c.stmts {
			r, ok := ca.Results[st.ID]
			if !ok {
				problems = append(problems, Problem{Case: c.name, ID: st.ID, Query: st.Query, What: "not run by chdb"})
				continue
			}
			if r.Error != "" {
				problems = append(problems, Problem{Case: c.name, ID: st.ID, Query: st.Query, What: "fails on current ClickHouse: " + r.Error})
				continue
			}
			if st.Kind() != "select" || readsSystemTables(st.Query) {
				continue
			}
			if d := Compare(c.answers[st.ID], r); d != "" {
				problems = append(problems, Problem{Case: c.name, ID: st.ID, Query: st.Query, What: "18.16 vs current: " + d})
			}
		}
	}
	return ans.Version, problems, nil
}

// emptyInsert turns a batch INSERT as logged ("INSERT INTO t (a, b) FORMAT
// Native" or "… VALUES": the rows travel apart) into an INSERT … SELECT of no rows, which current
// ClickHouse runs only when the table and every column exist.
func emptyInsert(q string) string {
	m := batchInsert.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return q
	}
	cols := strings.TrimSpace(m[2])
	if cols == "" {
		return fmt.Sprintf("INSERT INTO %s SELECT * FROM %s LIMIT 0", m[1], m[1])
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s LIMIT 0", m[1], cols, cols, m[1])
}

var batchInsert = regexp.MustCompile(`(?is)^INSERT\s+INTO\s+([A-Za-z0-9_.]+)\s*(?:\((.*)\))?\s*(?:VALUES|FORMAT\s+Native)\s*$`)

// readsSystemTables: answers about parts, merges and the like differ
// between servers by nature; such statements must run, not agree.
func readsSystemTables(q string) bool {
	return strings.Contains(q, "system.")
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
