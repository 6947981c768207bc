package difftest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Result is one statement's answer, as JSONCompact gives it.
type Result struct {
	Meta  [][2]string // column name and type
	Data  [][]any     // rows; numbers are json.Number
	Error string
}

// HTTP runs statements on a ClickHouse server through its HTTP interface,
// which answers in the same JSON formats as chdb.
type HTTP struct {
	URL    string // e.g. http://127.0.0.1:18123/
	Client *http.Client
}

func (h HTTP) do(ctx context.Context, db, query string) ([]byte, error) {
	u, err := url.Parse(h.URL)
	if err != nil {
		return nil, err
	}
	v := u.Query()
	if db != "" {
		v.Set("database", db)
	}
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(query))
	if err != nil {
		return nil, err
	}
	c := h.Client
	if c == nil {
		// The server closes idle keep-alive connections after a few
		// seconds; a reused one can then fail with EOF. Each statement
		// gets a connection of its own.
		c = &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", strings.TrimSpace(string(body)))
	}
	return body, nil
}

// Query runs a SELECT with db as the current database and returns its
// answer (an error answer in Result.Error).
func (h HTTP) Query(ctx context.Context, db, query string) Result {
	body, err := h.do(ctx, db, query+"\nFORMAT JSONCompact")
	if err != nil {
		return Result{Error: err.Error()}
	}
	r, err := decodeJSONCompact(body)
	if err != nil {
		return Result{Error: err.Error()}
	}
	return r
}

func decodeJSONCompact(body []byte) (Result, error) {
	var doc struct {
		Meta []struct{ Name, Type string }
		Data [][]any
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return Result{}, fmt.Errorf("decode JSONCompact: %w", err)
	}
	r := Result{Data: doc.Data}
	for _, m := range doc.Meta {
		r.Meta = append(r.Meta, [2]string{m.Name, m.Type})
	}
	return r, nil
}

// Load is the data of one table: an INSERT … FORMAT JSONEachRow and its rows.
type Load struct {
	SQL  string `json:"sql"`
	Data string `json:"data"`
}

var mvTarget = regexp.MustCompile(`(?i)\bTO\s+([A-Za-z0-9_]+\.)?([A-Za-z0-9_]+)`)

// Dump returns the rows of every table of db that holds data of its own:
// views, the tables materialized views fill (chdb's views fill them again
// from the rows loaded) and schema_migrations are left out.
func (h HTTP) Dump(ctx context.Context, db string) ([]Load, error) {
	body, err := h.do(ctx, "", fmt.Sprintf("SELECT name, engine, create_table_query FROM system.tables WHERE database = '%s' ORDER BY name FORMAT JSONCompact", db))
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", db, err)
	}
	r, err := decodeJSONCompact(body)
	if err != nil {
		return nil, err
	}
	filled := map[string]bool{}
	var tables []string
	for _, row := range r.Data {
		name, engine, create := row[0].(string), row[1].(string), row[2].(string)
		if engine == "MaterializedView" {
			if m := mvTarget.FindStringSubmatch(create); m != nil {
				filled[m[2]] = true
			}
			continue
		}
		if engine == "View" || name == "schema_migrations" {
			// schema_migrations is the migration runner's, not the
			// migrations': chdb's schema comes from their statements alone.
			continue
		}
		tables = append(tables, name)
	}
	var out []Load
	for _, t := range tables {
		if filled[t] {
			continue
		}
		data, err := h.do(ctx, "", fmt.Sprintf("SELECT * FROM %s.%s FORMAT JSONEachRow", db, t))
		if err != nil {
			return nil, fmt.Errorf("dump %s.%s: %w", db, t, err)
		}
		out = append(out, Load{SQL: fmt.Sprintf("INSERT INTO %s.%s FORMAT JSONEachRow", db, t), Data: string(data)})
	}
	return out, nil
}

// ChdbCase is one flow replayed in chdb: the current-dialect schema (Setup),
// the data (Loads), then Queries in order.
type ChdbCase struct {
	Name    string      `json:"name"`
	Setup   []string    `json:"setup"`
	Loads   []Load      `json:"loads"`
	Queries []ChdbQuery `json:"queries"`
}

// ChdbQuery is one statement for chdb.
type ChdbQuery struct {
	ID  string `json:"id"`
	SQL string `json:"sql"`
}

// ChdbAnswer is chdb's answer to a job.
type ChdbAnswer struct {
	Version string
	Cases   map[string]ChdbCaseAnswer
}

// ChdbCaseAnswer is chdb's answer to one case: Error when the schema or the
// data could not be set up, else one Result per query id.
type ChdbCaseAnswer struct {
	Error   string
	Results map[string]Result
}

// RunChdb replays cases through deploy/chdb/diff.py (script) in one chdb
// session.
func RunChdb(ctx context.Context, python, script string, cases []ChdbCase) (ChdbAnswer, error) {
	job, err := json.Marshal(map[string]any{"cases": cases})
	if err != nil {
		return ChdbAnswer{}, err
	}
	cmd := exec.CommandContext(ctx, python, script)
	cmd.Stdin = bytes.NewReader(job)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return ChdbAnswer{}, fmt.Errorf("%s: %w\n%s", script, err, stderr.String())
	}
	var doc struct {
		Version string
		Cases   []struct {
			Name    string
			Error   string
			Results []struct {
				ID    string
				Error string
				Meta  [][2]string
				Data  [][]any
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return ChdbAnswer{}, fmt.Errorf("decode %s output: %w", script, err)
	}
	a := ChdbAnswer{Version: doc.Version, Cases: map[string]ChdbCaseAnswer{}}
	for _, c := range doc.Cases {
		ca := ChdbCaseAnswer{Error: c.Error, Results: map[string]Result{}}
		for _, r := range c.Results {
			ca.Results[r.ID] = Result{Meta: r.Meta, Data: r.Data, Error: r.Error}
		}
		a.Cases[c.Name] = ca
	}
	return a, nil
}
