package detect

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/rules"
)

// KeyRegistry lists the registered API keys (current versions).
type KeyRegistry interface {
	All(ctx context.Context) ([]keys.Key, error)
}

// Engine evaluates rules against one ClickHouse database.
type Engine struct {
	conn driver.Conn
	db   string
	keys KeyRegistry
	log  *slog.Logger
	// MaxGroups caps the groups one evaluation returns (default 1000).
	MaxGroups int
}

// NewEngine returns an Engine reading database db.
func NewEngine(conn driver.Conn, db string, reg KeyRegistry, log *slog.Logger) *Engine {
	return &Engine{conn: conn, db: db, keys: reg, log: log, MaxGroups: 1000}
}

// Eval evaluates r at time t and returns its findings, exceptions applied,
// before cooldown. It reads only [t−delay−window, t−delay) of the access log
// (and the key registry), so it is repeatable.
func (e *Engine) Eval(ctx context.Context, r *rules.Rule, t time.Time) ([]Finding, error) {
	w := WindowFor(r, t)
	var (
		fs  []Finding
		err error
	)
	switch r.Type {
	case rules.TypeThreshold:
		fs, err = e.threshold(ctx, r, w)
	case rules.TypeIPAllowlist:
		if r.Mode == "missing" {
			fs, err = e.missingAllowlist(ctx, r, w)
		} else {
			fs, err = e.outsideAllowlist(ctx, r, w)
		}
	case rules.TypeKeyRotation:
		fs, err = e.keyRotation(ctx, r, w)
	case rules.TypeStaleKey:
		fs, err = e.staleKey(ctx, r, w)
	case rules.TypeNewValue:
		fs, err = e.newValue(ctx, r, w)
	case rules.TypeSQL:
		fs, err = e.sqlRule(ctx, r, w)
	case rules.TypeSpike:
		fs, err = e.spike(ctx, r, w)
	case rules.TypeDormant:
		fs, err = e.dormant(ctx, r, w)
	default:
		err = fmt.Errorf("unknown rule type %q", r.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("evaluate rule %s at %s: %w", r.ID, w.Eval.Format(time.RFC3339), err)
	}
	return applyExceptions(r, fs), nil
}

// applyExceptions drops findings about excepted keys and addresses.
func applyExceptions(r *rules.Rule, fs []Finding) []Finding {
	out := fs[:0]
	for _, f := range fs {
		if f.KeyID != "" && r.ExceptedKey(f.KeyID) {
			continue
		}
		if ip, ok := parseIP(f.ClientIP); ok && r.ExceptedIP(ip) {
			continue
		}
		out = append(out, f)
	}
	return out
}

func (e *Engine) table(name string) string { return e.db + "." + name }
