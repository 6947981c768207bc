package ingest

import (
	"math/rand/v2"
	"time"
)

// backoff yields exponentially growing delays from min to max with ±20%
// jitter, so that many ingesters do not retry in step.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	jitter := time.Duration(float64(b.cur) * (rand.Float64()*0.4 - 0.2))
	return b.cur + jitter
}
