package rules

import (
	"fmt"
	"sort"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// Filter restricts the events a rule looks at: every condition must hold.
// Written as `field: value` (equals) or `field: {op: value, …}` with ops
// eq, in, not (a value or a list), prefix, gt, gte, lt, lte.
type Filter []Condition

// Condition is one test on one field.
type Condition struct {
	Field string
	Op    string // eq, in, not_in, prefix, gt, gte, lt, lte
	// Values holds the operand(s): one for eq/prefix/comparisons, any
	// number for in/not_in. Numbers and booleans are kept as text and
	// checked against the field's kind in validation.
	Values []string
	Line   int
	Col    int
}

// Ops lists the filter operators a rule may use.
var Ops = []string{"eq", "in", "not", "prefix", "gt", "gte", "lt", "lte"}

// UnmarshalYAML implements yaml.Unmarshaler.
func (f *Filter) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return typeErr(n, "filter: want a mapping of field to condition")
	}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			*f = append(*f, Condition{Field: k.Value, Op: "eq", Values: []string{v.Value}, Line: v.Line, Col: v.Column})
		case yaml.SequenceNode:
			vals, err := scalars(v)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			*f = append(*f, Condition{Field: k.Value, Op: "in", Values: vals, Line: v.Line, Col: v.Column})
		case yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				op, arg := v.Content[j], v.Content[j+1]
				c := Condition{Field: k.Value, Op: op.Value, Line: op.Line, Col: op.Column}
				vals, err := scalars(arg)
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				c.Values = vals
				switch {
				case c.Op == "not" && arg.Kind == yaml.SequenceNode:
					c.Op = "not_in"
				case c.Op == "not":
					c.Op = "ne"
				case c.Op == "in" && arg.Kind != yaml.SequenceNode:
					errs = append(errs, fmt.Sprintf("line %d: column %d: filter %s: in wants a list", arg.Line, arg.Column, k.Value))
				}
				*f = append(*f, c)
			}
		default:
			errs = append(errs, fmt.Sprintf("line %d: column %d: filter %s: want a value, a list or {op: value}", v.Line, v.Column, k.Value))
		}
	}
	if errs != nil {
		return &yaml.TypeError{Errors: errs}
	}
	sort.SliceStable(*f, func(i, j int) bool { return (*f)[i].Field < (*f)[j].Field })
	return nil
}

func scalars(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}, nil
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: column %d: want a plain value", c.Line, c.Column)
			}
			out = append(out, c.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: column %d: want a value or a list of values", n.Line, n.Column)
}

// validate checks the condition against the field list.
func (c Condition) validate() error {
	fld, ok := LookupField(c.Field)
	if !ok {
		return fmt.Errorf("filter: unknown field %q (fields: %v)", c.Field, fieldNames())
	}
	switch c.Op {
	case "eq", "ne", "in", "not_in":
	case "prefix":
		if fld.Kind != String {
			return fmt.Errorf("filter %s: prefix needs a text field", c.Field)
		}
	case "gt", "gte", "lt", "lte":
		if fld.Kind != Number {
			return fmt.Errorf("filter %s: %s needs a numeric field", c.Field, c.Op)
		}
	default:
		return fmt.Errorf("filter %s: unknown operator %q (operators: %v)", c.Field, c.Op, Ops)
	}
	if len(c.Values) == 0 {
		return fmt.Errorf("filter %s: empty list", c.Field)
	}
	if len(c.Values) > 1 && c.Op != "in" && c.Op != "not_in" {
		return fmt.Errorf("filter %s: %s takes one value, not a list", c.Field, c.Op)
	}
	for _, v := range c.Values {
		switch fld.Kind {
		case Number:
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return fmt.Errorf("filter %s: %q is not a number", c.Field, v)
			}
		case Bool:
			if _, err := strconv.ParseBool(v); err != nil {
				return fmt.Errorf("filter %s: %q is not true or false", c.Field, v)
			}
		}
	}
	return nil
}
