package gen

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// mustNew returns a Generator for cfg or fails the test.
func mustNew(tb testing.TB, cfg Config) *Generator {
	tb.Helper()
	g, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return g
}

// run streams every event of g to fn, failing the test on error.
func run(tb testing.TB, g *Generator, fn func(Event)) {
	tb.Helper()
	err := g.Run(context.Background(), func(e Event) error {
		fn(e)
		return nil
	})
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
}

// digest returns the SHA-256 of all encoded events and their count.
func digest(tb testing.TB, g *Generator) ([32]byte, int) {
	tb.Helper()
	h := sha256.New()
	var buf []byte
	n := 0
	run(tb, g, func(e Event) {
		buf = e.AppendJSON(buf[:0])
		buf = append(buf, '\n')
		h.Write(buf)
		n++
	})
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n
}

// smallConfig is a one-day window light enough for tests.
func smallConfig(seed int64, scenarios ...string) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.EventsPerSecond = 3
	cfg.Scenarios = scenarios
	return cfg
}

// inWindow reports whether e happened during inc.
func inWindow(e *Event, inc Incident) bool {
	return !e.TS.Before(inc.Start) && e.TS.Before(inc.End)
}

// allowed reports whether ip is inside one of cidrs.
func allowed(tb testing.TB, cidrs []string, ip string) bool {
	tb.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		tb.Fatalf("client_ip %q: %v", ip, err)
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			tb.Fatalf("cidr %q: %v", c, err)
		}
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// keyIndex maps key ids to registry entries.
func keyIndex(g *Generator) map[string]Key {
	m := map[string]Key{}
	for _, k := range g.Keys() {
		m[k.ID] = k
	}
	return m
}

// windowEnd returns the exclusive end of cfg's window.
func windowEnd(cfg Config) time.Time { return cfg.Start.Add(cfg.Duration) }

// sprintf is fmt.Sprintf.
func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
