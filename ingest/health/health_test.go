package health

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestChecker(t *testing.T) {
	chErr := errors.New("connection refused")
	var chDown bool
	var writesFailing bool
	c := New(0, slog.New(slog.DiscardHandler),
		Probe{Name: "clickhouse", Check: func(context.Context) error {
			if chDown {
				return chErr
			}
			return nil
		}},
		Probe{Name: "kafka", Check: func(context.Context) error { return nil }},
	)
	c.Add(func() error {
		if writesFailing {
			return errors.New("writes to ClickHouse are failing")
		}
		return nil
	})
	steps := []struct {
		name          string
		chDown, write bool
		check         bool
		want          string // substring of the error; "" = ready
	}{
		{"before any check", false, false, false, "not checked yet"},
		{"all fine", false, false, true, ""},
		{"clickhouse down", true, false, true, "clickhouse: connection refused"},
		{"back, but writes failing", false, true, true, "writes to ClickHouse are failing"},
		{"recovered", false, false, true, ""},
	}
	for _, s := range steps {
		chDown, writesFailing = s.chDown, s.write
		if s.check {
			c.CheckNow(context.Background())
		}
		err := c.Ready()
		switch {
		case s.want == "" && err != nil:
			t.Fatalf("%s: Ready() = %v, want nil", s.name, err)
		case s.want != "" && (err == nil || !strings.Contains(err.Error(), s.want)):
			t.Fatalf("%s: Ready() = %v, want an error with %q", s.name, err, s.want)
		}
	}
}
