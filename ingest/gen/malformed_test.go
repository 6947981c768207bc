package gen

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"
)

func TestMalformedCases(t *testing.T) {
	cases := MalformedCases(1)
	reasons := []string{ReasonTooLarge, ReasonInvalidUTF8, ReasonNotJSON, ReasonWrongType, ReasonMissingField, ReasonBadValue, ReasonBadTimestamp}
	covered := map[string]bool{}
	names := map[string]bool{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if names[c.Name] || c.Why == "" || !slices.Contains(reasons, c.Reason) {
				t.Fatalf("bad case metadata %q/%q", c.Name, c.Reason)
			}
			names[c.Name], covered[c.Reason] = true, true
			if c.Secret != "" && (!bytes.Contains(c.Data, []byte(c.Secret)) || !secretPattern.MatchString(c.Secret)) {
				t.Errorf("secret %q not in data", c.Secret)
			}
			var m map[string]any
			objErr := json.Unmarshal(c.Data, &m)
			var ev Event
			evErr := json.Unmarshal(c.Data, &ev)
			switch c.Reason {
			case ReasonNotJSON:
				if objErr == nil {
					t.Errorf("decodes as a JSON object")
				}
			case ReasonInvalidUTF8:
				if utf8.Valid(c.Data) {
					t.Errorf("valid UTF-8")
				}
			case ReasonTooLarge:
				if len(c.Data) <= 2<<20 || objErr != nil {
					t.Errorf("%d bytes (%v), want a valid object over 2 MiB", len(c.Data), objErr)
				}
			case ReasonWrongType:
				if objErr != nil || evErr == nil {
					t.Errorf("want a JSON object that does not fit Event: %v / %v", objErr, evErr)
				}
			case ReasonMissingField:
				if _, ok := m[c.Field]; objErr != nil || ok {
					t.Errorf("want a JSON object without %s", c.Field)
				}
			case ReasonBadValue, ReasonBadTimestamp:
				if _, ok := m[c.Field]; objErr != nil || !ok {
					t.Errorf("want a JSON object with a bad %s: %v", c.Field, objErr)
				}
			}
		})
	}
	for _, r := range reasons {
		if !covered[r] {
			t.Errorf("no case for reason %s", r)
		}
	}
	lines := MalformedLines(1)
	if len(lines) != len(cases) || !bytes.Equal(lines[3], cases[3].Data) {
		t.Error("MalformedLines does not match MalformedCases")
	}
	if !bytes.Equal(MalformedLines(1)[5], lines[5]) || bytes.Equal(MalformedLines(2)[5], lines[5]) {
		t.Error("secret case: want same bytes for a seed and different bytes across seeds")
	}
}
