// Package health answers readiness for long-running commands: it checks
// the services a command depends on (ClickHouse, the Kafka brokers) on an
// interval, and combines those checks with the command's own state (writes
// and commits succeeding), so that /readyz tells an orchestrator the truth
// from the moment the process starts listening, before any dependency is
// reachable.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Probe checks one dependency. Check should return within its context's
// deadline.
type Probe struct {
	Name  string
	Check func(ctx context.Context) error
}

// Checker runs probes every interval and remembers their last results.
type Checker struct {
	probes   []Probe
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	results map[string]error
	states  []func() error
}

// New returns a Checker running probes every interval (5s when zero), each
// bounded by a timeout of the same length.
func New(interval time.Duration, log *slog.Logger, probes ...Probe) *Checker {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &Checker{probes: probes, interval: interval, timeout: interval, log: log, results: make(map[string]error)}
}

// Add registers a readiness function of the command itself (for example
// "writes are failing"), consulted on every Ready call.
func (c *Checker) Add(state func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, state)
}

// Run probes until ctx ends, first at once.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.CheckNow(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckNow runs every probe once and records the results, logging changes.
func (c *Checker) CheckNow(ctx context.Context) {
	for _, p := range c.probes {
		pctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := p.Check(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		prev, seen := c.results[p.Name]
		c.results[p.Name] = err
		c.mu.Unlock()
		switch {
		case err != nil && (!seen || prev == nil):
			c.log.Warn("dependency not usable", "dependency", p.Name, "err", err)
		case err == nil && seen && prev != nil:
			c.log.Info("dependency usable again", "dependency", p.Name)
		}
	}
}

// Ready returns nil when every probe passed on its last run and every
// registered state is fine; else an error naming what is not.
func (c *Checker) Ready() error {
	c.mu.Lock()
	var errs []error
	for _, p := range c.probes {
		err, seen := c.results[p.Name]
		switch {
		case !seen:
			errs = append(errs, fmt.Errorf("%s: not checked yet", p.Name))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	states := c.states
	c.mu.Unlock()
	for _, s := range states {
		if err := s(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
