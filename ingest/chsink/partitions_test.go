package chsink

import (
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/ingest/event"
)

func TestByPartitions(t *testing.T) {
	base := time.Date(2026, 11, 1, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		days      []int // day offset of each row
		limit     int
		wantParts int
	}{
		{"within the limit: one insert", []int{0, 1, 0, 1}, 2, 1},
		{"one day", []int{0, 0, 0}, 1, 1},
		{"seven days, limit 2", []int{0, 1, 2, 3, 4, 5, 6, 6, 5, 0}, 2, 4},
		{"seven days, limit 100", []int{0, 1, 2, 3, 4, 5, 6}, 100, 1},
		{"three days, limit 1", []int{2, 0, 1, 2}, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rows event.Rows
			for i, d := range tt.days {
				r := event.Row{TS: base.Add(time.Duration(d)*24*time.Hour + time.Duration(i)*time.Minute), RequestID: string(rune('a' + i)), KafkaOffset: int64(i)}
				rows.Append(&r)
			}
			s := &Sink{maxParts: tt.limit}
			parts := s.byPartitions(&rows)
			if len(parts) != tt.wantParts {
				t.Fatalf("%d inserts, want %d", len(parts), tt.wantParts)
			}
			seen := map[int64]bool{}
			for _, p := range parts {
				days := map[int64]bool{}
				for i := 0; i < p.Len(); i++ {
					days[p.TSMilli[i]/86_400_000] = true
					if seen[p.KafkaOffset[i]] {
						t.Fatalf("row %d written twice", p.KafkaOffset[i])
					}
					seen[p.KafkaOffset[i]] = true
					if i > 0 && p.KafkaOffset[i] < p.KafkaOffset[i-1] {
						t.Fatalf("rows reordered within an insert")
					}
				}
				if len(days) > tt.limit {
					t.Fatalf("an insert spans %d days, limit %d", len(days), tt.limit)
				}
			}
			if len(seen) != len(tt.days) {
				t.Fatalf("%d of %d rows written", len(seen), len(tt.days))
			}
		})
	}
}
