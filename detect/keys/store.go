package keys

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

var keyColumns = []string{
	"key_id", "key_fingerprint", "key_hint", "env", "account_id", "owner", "status", "created_at",
	"rotated_at", "expires_at", "allowed_cidrs", "last_used_at", "updated_at", "source", "deleted",
}

var keyEventColumns = []string{
	"ts", "type", "key_id", "key_fingerprint", "details", "source", "kafka_topic", "kafka_partition", "kafka_offset", "received_at",
}

// Store reads and writes the key registry tables (keys, key_events) of one
// ClickHouse database. It is safe for concurrent use; concurrent writers to
// the same key (an import during a consumer's batch) race, and the later
// version wins.
type Store struct {
	conn        driver.Conn
	db          string
	now         func() time.Time
	insertKeys  string
	insertEvent string
}

// NewStore returns a Store for database db through conn.
func NewStore(conn driver.Conn, db string) *Store {
	return &Store{
		conn:        conn,
		db:          db,
		now:         time.Now,
		insertKeys:  fmt.Sprintf("INSERT INTO %s.keys (%s)", db, strings.Join(keyColumns, ", ")),
		insertEvent: fmt.Sprintf("INSERT INTO %s.key_events (%s)", db, strings.Join(keyEventColumns, ", ")),
	}
}

// keyRow is a row of the keys table.
type keyRow struct {
	ID           string     `ch:"key_id"`
	Fingerprint  string     `ch:"key_fingerprint"`
	Hint         string     `ch:"key_hint"`
	Env          string     `ch:"env"`
	AccountID    string     `ch:"account_id"`
	Owner        string     `ch:"owner"`
	Status       string     `ch:"status"`
	CreatedAt    time.Time  `ch:"created_at"`
	RotatedAt    *time.Time `ch:"rotated_at"`
	ExpiresAt    *time.Time `ch:"expires_at"`
	AllowedCIDRs []string   `ch:"allowed_cidrs"`
	LastUsedAt   *time.Time `ch:"last_used_at"`
	UpdatedAt    time.Time  `ch:"updated_at"`
	Source       string     `ch:"source"`
	Deleted      uint8      `ch:"deleted"`
}

// All returns the current version of every key (read with FINAL), sorted by
// id, skipping withdrawn (deleted) entries. It reads the whole table: the
// registry is small.
func (s *Store) All(ctx context.Context) ([]Key, error) {
	var rows []keyRow
	// deleted is skipped here, not in SQL: a WHERE next to FINAL is applied
	// after the latest version is chosen, but a PREWHERE (which a server may
	// move conditions into) before, returning stale rows.
	q := fmt.Sprintf("SELECT %s FROM %s.keys FINAL", strings.Join(keyColumns, ", "), s.db)
	if err := s.conn.Select(ctx, &rows, q); err != nil {
		return nil, fmt.Errorf("read %s.keys: %w", s.db, err)
	}
	out := make([]Key, 0, len(rows))
	for _, r := range rows {
		if r.Deleted != 0 {
			continue
		}
		k := Key{
			ID: r.ID, Fingerprint: r.Fingerprint, Hint: r.Hint, Env: r.Env, AccountID: r.AccountID, Owner: r.Owner,
			Status: r.Status, CreatedAt: r.CreatedAt.UTC(), RotatedAt: utcPtr(r.RotatedAt), ExpiresAt: utcPtr(r.ExpiresAt),
			LastUsedAt: utcPtr(r.LastUsedAt), UpdatedAt: r.UpdatedAt.UTC(), AllowedCIDRs: make([]netip.Prefix, 0, len(r.AllowedCIDRs)),
		}
		for _, c := range r.AllowedCIDRs {
			p, err := ParseCIDR(c)
			if err != nil {
				return nil, fmt.Errorf("read %s.keys: key %q: allowed_cidrs: %w", s.db, r.ID, err)
			}
			k.AllowedCIDRs = append(k.AllowedCIDRs, p)
		}
		k.AllowedCIDRs = normalizeCIDRs(k.AllowedCIDRs)
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Upsert writes a new version of each key, marked with source (SourceImport
// or SourceKafka), replacing the key's current state entirely. Each key's
// UpdatedAt is ignored: the version is the write time. It returns an error,
// writing nothing, if a key has no id, an unknown status or a time outside
// ClickHouse's DateTime range.
func (s *Store) Upsert(ctx context.Context, keys []Key, source string) error {
	return s.write(ctx, keys, nil, source, nil)
}

// historyRow is a row of key_events.
type historyRow struct {
	ts        time.Time
	typ       string
	keyID, fp string
	details   string
	topic     string
	partition int32
	offset    int64
	fromKafka bool
}

// write inserts keys and tombstones (deleted = 1 versions of the given ids)
// as one insert with a fresh version, then the history rows.
func (s *Store) write(ctx context.Context, keys []Key, tombstones []Key, source string, history []historyRow) error {
	if source != SourceImport && source != SourceKafka {
		return fmt.Errorf("write keys: source %q: want import or kafka", source)
	}
	for _, k := range keys {
		if err := checkStorable(k); err != nil {
			return fmt.Errorf("write keys: %w", err)
		}
	}
	if len(keys)+len(tombstones) > 0 {
		version, err := s.nextVersion(ctx)
		if err != nil {
			return err
		}
		b, err := s.conn.PrepareBatch(ctx, s.insertKeys)
		if err != nil {
			return fmt.Errorf("insert into %s.keys: prepare: %w", s.db, err)
		}
		defer b.Abort() //nolint:errcheck // no-op after Send
		for i, k := range append(slices.Clip(keys), tombstones...) {
			deleted := uint8(0)
			if i >= len(keys) {
				deleted = 1
			}
			cidrs := cidrStrings(k.AllowedCIDRs)
			if err := b.Append(k.ID, k.Fingerprint, k.Hint, k.Env, k.AccountID, k.Owner, k.Status, dateTime(k.CreatedAt),
				dateTimePtr(k.RotatedAt), dateTimePtr(k.ExpiresAt), cidrs, dateTimePtr(k.LastUsedAt), version, source, deleted); err != nil {
				return fmt.Errorf("insert into %s.keys: key %q: %w", s.db, k.ID, err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert %d rows into %s.keys: %w", len(keys)+len(tombstones), s.db, err)
		}
	}
	if len(history) == 0 {
		return nil
	}
	now := s.now().UTC().Truncate(time.Second)
	b, err := s.conn.PrepareBatch(ctx, s.insertEvent)
	if err != nil {
		return fmt.Errorf("insert into %s.key_events: prepare: %w", s.db, err)
	}
	defer b.Abort() //nolint:errcheck // no-op after Send
	for _, h := range history {
		topic, part, off := h.topic, h.partition, h.offset
		if !h.fromKafka {
			topic, part, off = "", -1, -1
		}
		if err := b.Append(dateTime(h.ts), h.typ, h.keyID, h.fp, h.details, source, topic, part, off, now); err != nil {
			return fmt.Errorf("insert into %s.key_events: %w", s.db, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d rows into %s.key_events: %w", len(history), s.db, err)
	}
	return nil
}

// nextVersion returns the updated_at for a write: now, or one second after
// the newest version in the table if that is not earlier, so versions only
// grow even when writes come faster than once a second.
func (s *Store) nextVersion(ctx context.Context) (time.Time, error) {
	var newest time.Time
	if err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT max(updated_at) FROM %s.keys", s.db)).Scan(&newest); err != nil {
		return time.Time{}, fmt.Errorf("read newest version of %s.keys: %w", s.db, err)
	}
	v := s.now().UTC().Truncate(time.Second)
	if !newest.IsZero() && !newest.Before(v) {
		v = newest.UTC().Add(time.Second)
	}
	return v, nil
}

// checkStorable checks what the table needs of k.
func checkStorable(k Key) error {
	if k.ID == "" {
		return fmt.Errorf("a key without id")
	}
	if !validStatus(k.Status) {
		return fmt.Errorf("key %q: status %q: want active, revoked or expired", k.ID, k.Status)
	}
	for _, t := range []*time.Time{&k.CreatedAt, k.RotatedAt, k.ExpiresAt, k.LastUsedAt} {
		if t != nil && (t.Before(minTime) || !t.Before(maxTime)) {
			return fmt.Errorf("key %q: time %s out of ClickHouse's DateTime range", k.ID, t.Format(time.RFC3339))
		}
	}
	for _, p := range k.AllowedCIDRs {
		if !p.IsValid() {
			return fmt.Errorf("key %q: invalid CIDR in allowlist", k.ID)
		}
	}
	return nil
}

func dateTime(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

func dateTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dateTime(*t)
	return &v
}

// registry indexes the current keys for merging imports and events.
type registry struct {
	byID map[string]Key
	byFP map[string]string // fingerprint → key id
}

func newRegistry(keys []Key) *registry {
	r := &registry{byID: make(map[string]Key, len(keys)), byFP: make(map[string]string, len(keys))}
	for _, k := range keys {
		r.put(k)
	}
	return r
}

func (r *registry) put(k Key) {
	if old, ok := r.byID[k.ID]; ok && old.Fingerprint != "" && r.byFP[old.Fingerprint] == k.ID {
		delete(r.byFP, old.Fingerprint)
	}
	r.byID[k.ID] = k
	if k.Fingerprint != "" {
		r.byFP[k.Fingerprint] = k.ID
	}
}

func (r *registry) remove(id string) {
	if old, ok := r.byID[id]; ok {
		if old.Fingerprint != "" && r.byFP[old.Fingerprint] == id {
			delete(r.byFP, old.Fingerprint)
		}
		delete(r.byID, id)
	}
}

// adoptable returns the entry known only by fingerprint fp (its id is the
// fingerprint) that a key with registry id id should absorb.
func (r *registry) adoptable(id, fp string) (Key, bool) {
	if fp == "" || id == fp {
		return Key{}, false
	}
	k, ok := r.byID[fp]
	return k, ok
}

// ImportOptions change what [Store.Import] does.
type ImportOptions struct {
	// Replace marks every active or expired key absent from the import as
	// revoked. Without it, keys absent from the import are left alone.
	Replace bool
	// DryRun computes the result without writing anything.
	DryRun bool
}

// ImportResult counts what an import did.
type ImportResult struct {
	New, Changed, Unchanged int
	Revoked                 int // absent from the import, revoked by Replace
	Merged                  int // entries known by fingerprint merged into their registry id
}

// Import writes keys (as parsed by [Parse]) as the registry's new state, in
// one insert: each key replaces its current version. Where the import does
// not know a key's fingerprint, hint or last use, the current values are kept.
// An entry known so far only by its fingerprint is merged into the imported
// key with the same fingerprint and a registry id (and withdrawn). Each
// written key is recorded in key_events as type imported.
func (s *Store) Import(ctx context.Context, keys []Key, opts ImportOptions) (ImportResult, error) {
	var res ImportResult
	cur, err := s.All(ctx)
	if err != nil {
		return res, fmt.Errorf("import keys: %w", err)
	}
	reg := newRegistry(cur)
	inFile := make(map[string]bool, len(keys))
	for _, k := range keys {
		inFile[k.ID] = true
	}
	now := s.now().UTC().Truncate(time.Second)
	var out, tombstones []Key
	var history []historyRow
	for _, k := range keys {
		k = k.clone()
		c, found := reg.byID[k.ID]
		if !found {
			if a, ok := reg.adoptable(k.ID, k.Fingerprint); ok && !inFile[a.ID] {
				c, found = a, true
				tombstones = append(tombstones, a)
				res.Merged++
			}
		}
		if found {
			if k.Fingerprint == "" {
				k.Fingerprint, k.Hint = c.Fingerprint, c.Hint
			} else if k.Hint == "" && k.Fingerprint == c.Fingerprint {
				k.Hint = c.Hint
			}
			if k.LastUsedAt == nil {
				k.LastUsedAt = c.LastUsedAt
			}
		}
		if k.AllowedCIDRs == nil {
			k.AllowedCIDRs = []netip.Prefix{}
		}
		switch {
		case !found:
			res.New++
		case sameState(k, c):
			res.Unchanged++
		default:
			res.Changed++
		}
		out = append(out, k)
		history = append(history, historyRow{ts: now, typ: EventImported, keyID: k.ID, fp: k.Fingerprint, details: stateJSON(k)})
	}
	if opts.Replace {
		for _, c := range cur {
			if inFile[c.ID] || c.Status == StatusRevoked || slices.ContainsFunc(tombstones, func(t Key) bool { return t.ID == c.ID }) {
				continue
			}
			c.Status = StatusRevoked
			out = append(out, c)
			res.Revoked++
			history = append(history, historyRow{ts: now, typ: EventImported, keyID: c.ID, fp: c.Fingerprint, details: stateJSON(c)})
		}
	}
	if opts.DryRun {
		return res, nil
	}
	if err := s.write(ctx, out, tombstones, SourceImport, history); err != nil {
		return res, fmt.Errorf("import keys: %w", err)
	}
	return res, nil
}

// sameState reports whether a and b are the same key state, ignoring the
// version.
func sameState(a, b Key) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	return stateJSON(a) == stateJSON(b)
}

// Apply applies lifecycle events, in order, to the current registry and
// writes each changed key's new version (source kafka) and each event's
// history row (key_events), in one insert per table. It reads the whole
// registry once per call. Applying the same events again (after a failed
// write or a redelivery) gives the same state. It fails only when ClickHouse
// does; then nothing or part was written, and the caller retries all.
//
// An event names its key by KeyID, else by Fingerprint (the key whose id or
// current fingerprint it is, else a new key whose id is the fingerprint). An
// event with a registry id and a fingerprint merges an entry known so far
// only by that fingerprint into the registry id.
func (s *Store) Apply(ctx context.Context, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	cur, err := s.All(ctx)
	if err != nil {
		return fmt.Errorf("apply key events: %w", err)
	}
	reg := newRegistry(cur)
	changed := map[string]bool{} // ids whose state this batch writes
	var order []string           // ids in first-change order
	ordered := map[string]bool{}
	var tombstones []Key
	history := make([]historyRow, 0, len(events))
	for _, e := range events {
		id := e.KeyID
		if id == "" {
			id = e.Fingerprint
			if other, ok := reg.byFP[e.Fingerprint]; ok {
				id = other
			}
		}
		c, found := reg.byID[id]
		if !found {
			if a, ok := reg.adoptable(id, e.Fingerprint); ok {
				c, found = a, true
				reg.remove(a.ID)
				tombstones = append(tombstones, a)
				delete(changed, a.ID)
			}
		}
		k := e.apply(id, c, found)
		reg.put(k)
		changed[id] = true
		if !ordered[id] {
			ordered[id] = true
			order = append(order, id)
		}
		history = append(history, historyRow{ts: e.TS, typ: e.Type, keyID: id, fp: e.Fingerprint, details: e.details(),
			topic: e.Topic, partition: e.Partition, offset: e.Offset, fromKafka: true})
	}
	out := make([]Key, 0, len(order))
	for _, id := range order {
		if changed[id] {
			out = append(out, reg.byID[id])
		}
	}
	// A key merged away in this batch is only withdrawn, not also written.
	tombstones = slices.DeleteFunc(tombstones, func(t Key) bool { _, live := reg.byID[t.ID]; return live })
	if err := s.write(ctx, out, tombstones, SourceKafka, history); err != nil {
		return fmt.Errorf("apply %d key events: %w", len(events), err)
	}
	return nil
}
