package detect

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/auditwatch/auditwatch/rules"
)

// query is SQL text with positional arguments. Rule values only ever reach
// ClickHouse as arguments; field names only ever come from rules.Fields.
type query struct {
	sql  strings.Builder
	args []any
}

func (q *query) add(s string, args ...any) {
	q.sql.WriteString(s)
	q.args = append(q.args, args...)
}

// window adds the time condition that limits a scan to the window's
// partitions and primary-key ranges.
func (q *query) window(w Window) {
	q.add("ts >= toDateTime(?) AND ts < toDateTime(?)", uint32(w.From.Unix()), uint32(w.To.Unix()))
}

// filter adds " AND cond" for each condition of f.
func (q *query) filter(f rules.Filter) error {
	for _, c := range f {
		fld, ok := rules.LookupField(c.Field)
		if !ok {
			return fmt.Errorf("unknown field %q", c.Field)
		}
		args := make([]any, len(c.Values))
		for i, v := range c.Values {
			a, err := typed(fld, v)
			if err != nil {
				return err
			}
			args[i] = a
		}
		e := fld.Expr
		switch c.Op {
		case "eq":
			q.add(" AND "+e+" = ?", args[0])
		case "ne":
			q.add(" AND "+e+" != ?", args[0])
		case "in", "not_in":
			op := " IN ("
			if c.Op == "not_in" {
				op = " NOT IN ("
			}
			q.add(" AND " + e + op)
			for i, a := range args {
				if i > 0 {
					q.add(", ")
				}
				q.add("?", a)
			}
			q.add(")")
		case "prefix":
			q.add(" AND startsWith("+e+", ?)", args[0])
		case "gt":
			q.add(" AND "+e+" > ?", args[0])
		case "gte":
			q.add(" AND "+e+" >= ?", args[0])
		case "lt":
			q.add(" AND "+e+" < ?", args[0])
		case "lte":
			q.add(" AND "+e+" <= ?", args[0])
		default:
			return fmt.Errorf("unknown operator %q", c.Op)
		}
	}
	return nil
}

// typed converts a rule value to the Go type bound for the field's kind.
func typed(f rules.Field, v string) (any, error) {
	switch f.Kind {
	case rules.Number:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("field %s: %q is not a number", f.Name, v)
		}
		return n, nil
	case rules.Bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %q is not a boolean", f.Name, v)
		}
		if b {
			return uint8(1), nil
		}
		return uint8(0), nil
	}
	return v, nil
}

// in adds " IN (?, ?, …)" binding each value.
func (q *query) in(values []string) {
	q.add(" IN (")
	for i, v := range values {
		if i > 0 {
			q.add(", ")
		}
		q.add("?", v)
	}
	q.add(")")
}
