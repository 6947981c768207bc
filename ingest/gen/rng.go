package gen

import (
	"math/bits"
	"math/rand/v2"
)

// Stream identifiers keep the random sequences of independent parts of the
// generator apart, so that adding a scenario does not shift normal traffic.
const (
	streamRegistry = 0x7265676973747279
	streamNormal   = 0x6e6f726d616c5f5f
	streamSegment  = 0x7365676d656e7400
	streamScenario = 0x7363656e6172696f
	streamMangled  = 0x6d616c666f726d64
)

// rng is a PCG from math/rand/v2 with the few cheap draws the hot path needs.
// It must not be copied after newRNG: r points at pcg.
type rng struct {
	pcg rand.PCG
	r   *rand.Rand
}

// newRNG returns a generator seeded from the config seed and a stream id.
func newRNG(seed int64, stream uint64) *rng {
	g := &rng{}
	g.pcg.Seed(uint64(seed), mix64(stream))
	g.r = rand.New(&g.pcg)
	return g
}

// reseed restarts g on another stream without allocating.
func (g *rng) reseed(seed int64, stream uint64) { g.pcg.Seed(uint64(seed), mix64(stream)) }

func (g *rng) u64() uint64 { return g.pcg.Uint64() }

// intn returns a value in [0, n); n must be positive. The bias of the
// multiply-shift reduction is below 2^-40 for any n used here.
func (g *rng) intn(n int) int {
	hi, _ := bits.Mul64(g.pcg.Uint64(), uint64(n))
	return int(hi)
}

// between returns a value in [lo, hi].
func (g *rng) between(lo, hi int) int { return lo + g.intn(hi-lo+1) }

// int63n returns a value in [0, n) for large n.
func (g *rng) int63n(n int64) int64 {
	hi, _ := bits.Mul64(g.pcg.Uint64(), uint64(n))
	return int64(hi)
}

// float returns a value in [0, 1).
func (g *rng) float() float64 { return float64(g.pcg.Uint64()>>11) * 0x1p-53 }

// chance reports true with probability p.
func (g *rng) chance(p float64) bool { return g.float() < p }

// norm returns a standard normal value.
func (g *rng) norm() float64 { return g.r.NormFloat64() }

// pick returns a random element of s, which must not be empty.
func pick[T any](g *rng, s []T) T { return s[g.intn(len(s))] }

// mix64 is the splitmix64 finalizer, a bijection on uint64.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hashString is FNV-1a, used to derive stream ids from names.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
