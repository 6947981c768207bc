package consume

import (
	"math/rand/v2"
	"time"
)

// Backoff yields exponentially growing delays from Min to Max with ±20%
// jitter, so that many consumers do not retry in step.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	return b.cur + time.Duration(float64(b.cur)*(rand.Float64()*0.4-0.2))
}
