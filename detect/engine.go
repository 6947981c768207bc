package detect

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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
	// SQLConn runs `sql` rules (the rules user's connection); nil: the
	// engine's connection.
	SQLConn SQLConn
	// SQLLimits bound each `sql` rule query (zero fields: DefaultSQLLimits).
	SQLLimits SQLLimits
	// RegistryTTL is how long the key registry read by one evaluation is
	// reused by the next ones (default 0: read every time).
	RegistryTTL time.Duration

	sqlCheck limitsCheck

	regMu sync.Mutex
	reg   *registrySnapshot
	regAt time.Time
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
	reg, err := e.registry(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate rule %s at %s: %w", r.ID, w.Eval.Format(time.RFC3339), err)
	}
	resolveKeys(r, fs, reg.idx)
	return applyExceptions(r, fs), nil
}

// resolveKeys names each finding's key by its registry id, whatever name
// the rule's query found it under, and fills in its fingerprint and hint.
func resolveKeys(r *rules.Rule, fs []Finding, idx keyIndex) {
	for i := range fs {
		f := &fs[i]
		if f.KeyID == "" {
			continue
		}
		k := idx[f.KeyID]
		if k == nil {
			if keys.IsFingerprint(f.KeyID) {
				f.KeyFingerprint = f.KeyID // an unregistered key: its fingerprint is its only name
			}
			continue
		}
		if k.ID != f.KeyID && f.Group["key_id"] == f.KeyID {
			f.Group["key_id"] = k.ID
			order := make([]string, 0, len(f.Group))
			for _, p := range strings.Split(f.GroupKey, ",") {
				name, _, _ := strings.Cut(p, "=")
				order = append(order, name)
			}
			f.GroupKey = groupKey(f.Group, order)
			f.ID = findingID(r.ID, f.GroupKey, f.EvalTime)
		}
		f.KeyID, f.KeyFingerprint = k.ID, k.Fingerprint
		if f.KeyHint == "" {
			f.KeyHint = k.Hint
		}
		if f.AccountID == "" {
			f.AccountID = k.AccountID
		}
	}
}

// applyExceptions drops findings about excepted keys (by id or fingerprint)
// and addresses.
func applyExceptions(r *rules.Rule, fs []Finding) []Finding {
	out := fs[:0]
	for _, f := range fs {
		if f.KeyID != "" && (r.ExceptedKey(f.KeyID) || f.KeyFingerprint != "" && r.ExceptedKey(f.KeyFingerprint)) {
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
