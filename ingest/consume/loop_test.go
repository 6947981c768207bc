package consume

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// fakeSource hands out msgs in order, then io.EOF; it records every commit.
type fakeSource struct {
	mu      sync.Mutex
	msgs    []kafka.Message
	commits [][]kafka.Message
}

func (f *fakeSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return kafka.Message{}, err
	}
	if len(f.msgs) == 0 {
		return kafka.Message{}, io.EOF
	}
	m := f.msgs[0]
	f.msgs = f.msgs[1:]
	return m, nil
}

func (f *fakeSource) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits = append(f.commits, append([]kafka.Message(nil), msgs...))
	return nil
}

type countBatch struct{ n int }

func (b *countBatch) Add(kafka.Message, time.Time) { b.n++ }
func (b *countBatch) Len() int                     { return b.n }
func (b *countBatch) Bytes() int                   { return 0 }
func (b *countBatch) Reset()                       { b.n = 0 }

func msgs(partition int, from, to int64) []kafka.Message {
	var out []kafka.Message
	for o := from; o <= to; o++ {
		out = append(out, kafka.Message{Topic: "t", Partition: partition, Offset: o})
	}
	return out
}

// TestCommitsNeverMoveBack: a batch re-read after a rebalance (offsets at or
// below what this loop committed) commits nothing for that partition, and
// other partitions in the same batch still commit.
func TestCommitsNeverMoveBack(t *testing.T) {
	cases := []struct {
		name string
		feed [][]kafka.Message // one batch each (MaxMessages = len of the first)
		want []map[int]int64   // commits: partition → offset, in order
	}{
		{
			name: "in order",
			feed: [][]kafka.Message{msgs(0, 0, 4), msgs(0, 5, 9)},
			want: []map[int]int64{{0: 4}, {0: 9}},
		},
		{
			name: "re-read batch below the committed offset",
			feed: [][]kafka.Message{msgs(0, 0, 4), msgs(0, 0, 4), msgs(0, 4, 8)},
			want: []map[int]int64{{0: 4}, {0: 8}},
		},
		{
			name: "re-read partition beside a new one",
			feed: [][]kafka.Message{msgs(0, 10, 14), append(msgs(0, 11, 12), msgs(1, 0, 2)...)},
			want: []map[int]int64{{0: 14}, {1: 2}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{}
			for _, b := range tc.feed {
				src.msgs = append(src.msgs, b...)
			}
			size := len(tc.feed[0])
			var batches []int
			write := func(_ context.Context, b *countBatch) error {
				batches = append(batches, b.n)
				return nil
			}
			// Each batch in feed has the same size so the loop flushes at
			// its boundaries.
			for _, b := range tc.feed {
				if len(b) != size {
					t.Fatalf("feed batches must have equal sizes")
				}
			}
			l := New(src, func() *countBatch { return &countBatch{} }, write,
				Options{MaxMessages: size, FlushInterval: time.Hour}, Hooks[*countBatch]{}, slog.New(slog.DiscardHandler))
			if err := l.Run(context.Background()); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(batches) != len(tc.feed) {
				t.Fatalf("%d batches written, want %d", len(batches), len(tc.feed))
			}
			var got []map[int]int64
			for _, c := range src.commits {
				m := map[int]int64{}
				for _, msg := range c {
					m[msg.Partition] = msg.Offset
				}
				got = append(got, m)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("commits %v, want %v", got, tc.want)
			}
			for i := range got {
				if len(got[i]) != len(tc.want[i]) {
					t.Fatalf("commit %d = %v, want %v", i, got[i], tc.want[i])
				}
				for p, o := range tc.want[i] {
					if got[i][p] != o {
						t.Errorf("commit %d = %v, want %v", i, got[i], tc.want[i])
					}
				}
			}
		})
	}
}
