// Package gen generates seeded, repeatable synthetic access logs of the
// Brokeret trading API gateway, with named security incidents injected on top
// of realistic background traffic.
//
// A Generator is built from a Config by New. It owns a key registry (Keys),
// the ground truth of what it injects (Incidents), and streams events in time
// order through Run without holding them in memory. The same Config always
// produces byte-identical output; the start time is part of the Config, so
// nothing in this package reads the wall clock.
//
// Each Event encodes itself with AppendJSON into the ingest contract: one
// JSON object per Kafka message. MalformedCases supplies deliberately broken
// messages for ingest tests.
package gen
