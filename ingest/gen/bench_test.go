package gen

import (
	"context"
	"testing"

	json "github.com/goccy/go-json"
)

// BenchmarkGenerate measures generation plus JSON encoding on one goroutine
// and reports events per second. Each iteration is a full run of 1M normal
// events plus all scenarios.
func BenchmarkGenerate(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Events = 1_000_000
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	var events, bytes int64
	emit := func(e Event) error {
		buf = e.AppendJSON(buf[:0])
		events++
		bytes += int64(len(buf))
		return nil
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Run(context.Background(), emit); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := b.Elapsed().Seconds()
	b.ReportMetric(float64(events)/elapsed, "events/s")
	b.ReportMetric(float64(bytes)/float64(events), "B/event")
	b.ReportMetric(elapsed*1e9/float64(events), "ns/event")
}

// BenchmarkAppendJSON measures encoding alone.
func BenchmarkAppendJSON(b *testing.B) {
	ev := sampleEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

// plainEvent has Event's fields and tags but not its MarshalJSON, so
// BenchmarkGoccyJSON measures the library's own encoder.
type plainEvent Event

// BenchmarkGoccyJSON is the alternative to AppendJSON, for comparison.
func BenchmarkGoccyJSON(b *testing.B) {
	ev := plainEvent(sampleEvent())
	var n int
	b.ReportAllocs()
	for b.Loop() {
		out, err := json.Marshal(&ev)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}
