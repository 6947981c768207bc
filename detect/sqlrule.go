package detect

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/auditwatch/auditwatch/rules"
)

// sqlRule runs an analyst's SELECT with {from} and {to} bound to the window
// on the sql-rule connection (SQLConn, else the detector's), with readonly =
// 2 and the limits of SQLLimits: max_execution_time (the rule's timeout,
// capped), max_memory_usage, max_rows_to_read and max_result_rows, the
// overflow modes throw. A query over a limit fails with an error naming it.
// The query must return a column `group` and a numeric `count`, and may
// return `details`; unqualified table names resolve in the configured
// database.
func (e *Engine) sqlRule(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	text := strings.NewReplacer("{from}", "toDateTime(@aw_from)", "{to}", "toDateTime(@aw_to)", "{db}", e.db).Replace(strings.TrimRight(strings.TrimSpace(r.Query), ";"))
	conn := e.SQLConn
	if conn == nil {
		conn = e.conn
	}
	var revision uint64
	if sv, err := conn.ServerVersion(); err == nil && sv != nil {
		revision = sv.Revision
	}
	settings := e.SQLLimits.settings(r.Timeout.D(), revision)
	if err := e.sqlCheck.verify(ctx, conn, settings); err != nil {
		return nil, err
	}
	qctx := clickhouse.Context(ctx, clickhouse.WithSettings(settings))
	rows, err := conn.Query(qctx, text, clickhouse.Named("aw_from", uint32(w.From.Unix())), clickhouse.Named("aw_to", uint32(w.To.Unix())))
	if err != nil {
		return nil, limitError(err, settings)
	}
	defer rows.Close()
	cols := rows.Columns()
	gi, ci, di := -1, -1, -1
	for i, c := range cols {
		switch c {
		case "group":
			gi = i
		case "count":
			ci = i
		case "details":
			di = i
		}
	}
	if gi < 0 || ci < 0 {
		return nil, fmt.Errorf("sql rule must return columns group and count (got %v)", cols)
	}
	types := rows.ColumnTypes()
	var out []Finding
	for rows.Next() {
		vals := make([]any, len(cols))
		for i, t := range types {
			vals[i] = newScanDest(t.ScanType())
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, fmt.Errorf("scan: %w", limitError(err, settings))
		}
		group := fmt.Sprint(deref(vals[gi]))
		count, err := toFloat(deref(vals[ci]))
		if err != nil {
			return nil, fmt.Errorf("column count: %w", err)
		}
		g := map[string]string{"group": group}
		th := r.ThresholdFor(g)
		if count < th {
			continue
		}
		f := newFinding(r, w, g, nil)
		if strings.HasPrefix(group, "key_") || len(group) == 16 {
			f.KeyID = group
		}
		if ip, ok := parseIP(group); ok {
			f.ClientIP = ip.String()
		}
		f.Value, f.Threshold = count, th
		f.Evidence = Evidence{Details: map[string]any{}}
		if di >= 0 {
			f.Evidence.Details["details"] = fmt.Sprint(deref(vals[di]))
		}
		f.Summary = fmt.Sprintf("%s: %s = %.0f", r.Name, group, count)
		if d, ok := f.Evidence.Details["details"]; ok {
			f.Summary += " (" + d.(string) + ")"
		}
		escalate(r, &f)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, limitError(err, settings)
	}
	return out, nil
}
