// Package keys is auditwatch's API key registry: which keys exist, whose they
// are, their status, rotation and expiry dates and IP allowlists.
//
// The registry lives in the ClickHouse table keys (one row per version of a
// key, ReplacingMergeTree on updated_at; see docs/key-registry.md). It is
// filled two ways:
//
//   - imports of the gateway dashboard's registry export (YAML or CSV), parsed
//     strictly by [ParseFile] and written all-or-nothing by [Store.Import];
//   - lifecycle events from Kafka (created, rotated, revoked, …), decoded by
//     [DecodeEvent] and applied by a [Consumer] through [Store.Apply].
//
// A full API key may appear in an import file or an event; it is reduced to
// its fingerprint and hint (package ingest/secret) while parsing and never
// reaches a [Key], an [Event], ClickHouse, a log line or an error message.
//
// The detection engine reads the current registry with [Store.All] and asks
// each [Key] whether an address may use it ([Key.Allows]) and when it was last
// rotated ([Key.LastRotation]).
package keys
