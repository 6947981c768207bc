package gen

import (
	"math"
	"math/bits"
)

const (
	hourMs = int64(3_600_000)
	// Noise of a key's rate from hour to hour, and of all traffic together.
	keyNoiseSigma    = 0.15
	globalNoiseSigma = 0.08
)

// diurnalProfile returns 24 hourly multipliers with mean 1: a floor plus a
// bump around peak (UTC hour) of the given width in hours, on a circle.
func diurnalProfile(peak, width, floor float64) [24]float64 {
	var p [24]float64
	sum := 0.0
	for h := range p {
		d := math.Abs(float64(h) - peak)
		d = math.Min(d, 24-d)
		p[h] = floor + (1-floor)*math.Exp(-d*d/(2*width*width))
		sum += p[h]
	}
	for h := range p {
		p[h] = p[h] * 24 / sum
	}
	return p
}

// randomProfile draws a key's daily shape: most follow the US session
// (13:30–20:00 UTC), some European or Asian hours, a fifth are near-flat bots.
func randomProfile(r *rng) [24]float64 {
	peaks := []float64{15, 16, 16, 17, 17, 18, 19, 9, 10, 12, 2}
	floor := 0.03 + 0.2*r.float()
	if r.chance(0.2) {
		floor = 0.6 + 0.3*r.float()
	}
	return diurnalProfile(pick(r, peaks)+r.float()-0.5, 2+2*r.float(), floor)
}

// floorDiv returns ⌊a/b⌋ for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// hourOfDay returns the UTC hour of a unix millisecond time.
func hourOfDay(ms int64) int {
	h := floorDiv(ms, hourMs) % 24
	if h < 0 {
		h += 24
	}
	return int(h)
}

// segWeights fills w with the expected normal rate (events/s) of each traffic
// source during the hour with absolute index hourIdx — the keys, then OAuth
// apps, then unauthenticated clients — and returns their sum. The hourly
// noise is drawn from an RNG seeded by the hour, so it is the same whenever
// that hour is generated.
func (g *Generator) segWeights(r *rng, hourIdx int64, w []float64) float64 {
	r.reseed(g.cfg.Seed, streamSegment^uint64(hourIdx))
	h := int(hourIdx % 24)
	if h < 0 {
		h += 24
	}
	global := lognormal(r, globalNoiseSigma)
	total := 0.0
	for i := range g.info {
		noise := lognormal(r, keyNoiseSigma)
		v := g.info[i].rate * g.info[i].profile[h] * noise * global
		w[i] = v
		total += v
	}
	k := len(g.info)
	w[k] = g.oauthRate * g.oauthProfile[h] * lognormal(r, keyNoiseSigma) * global
	w[k+1] = g.noneRate * global
	return total + w[k] + w[k+1]
}

// lognormal returns a log-normal multiplier with mean 1.
func lognormal(r *rng, sigma float64) float64 {
	return math.Exp(sigma*r.norm() - sigma*sigma/2)
}

// alias is Vose's alias table for O(1) weighted sampling.
type alias struct {
	prob   []uint64
	alias  []int32
	scaled []float64
	small  []int32
	large  []int32
}

// build prepares the table for weights w with the given positive sum.
func (a *alias) build(w []float64, total float64) {
	n := len(w)
	if cap(a.prob) < n {
		a.prob, a.alias, a.scaled = make([]uint64, n), make([]int32, n), make([]float64, n)
	}
	a.prob, a.alias, a.scaled = a.prob[:n], a.alias[:n], a.scaled[:n]
	a.small, a.large = a.small[:0], a.large[:0]
	for i, v := range w {
		a.scaled[i] = v * float64(n) / total
		a.alias[i] = int32(i)
		if a.scaled[i] < 1 {
			a.small = append(a.small, int32(i))
		} else {
			a.large = append(a.large, int32(i))
		}
	}
	for len(a.small) > 0 && len(a.large) > 0 {
		s := a.small[len(a.small)-1]
		a.small = a.small[:len(a.small)-1]
		l := a.large[len(a.large)-1]
		a.prob[s] = probBits(a.scaled[s])
		a.alias[s] = l
		a.scaled[l] += a.scaled[s] - 1
		if a.scaled[l] < 1 {
			a.large = a.large[:len(a.large)-1]
			a.small = append(a.small, l)
		}
	}
	for _, i := range a.large {
		a.prob[i] = math.MaxUint64
	}
	for _, i := range a.small {
		a.prob[i] = math.MaxUint64
	}
}

// probBits maps p in [0, 1] to a uint64 threshold.
func probBits(p float64) uint64 {
	if p >= 1 {
		return math.MaxUint64
	}
	if p <= 0 {
		return 0
	}
	return uint64(p * (1 << 63) * 2)
}

// sample draws an index: the high half of a 128-bit product picks the
// column, the low half decides between it and its alias.
func (a *alias) sample(r *rng) int {
	hi, lo := bits.Mul64(r.u64(), uint64(len(a.prob)))
	if lo < a.prob[hi] {
		return int(hi)
	}
	return int(a.alias[hi])
}
