package gen

import (
	"math"
	"net/http"
	"slices"
	"time"
)

// NoiseRates are the rates of benign background noise at Config.Noise 1, per
// key and day. A good detector records some of it as signals but must not
// alert on any of it. Per address and per key every kind stays far below
// the thresholds of the default rules (key enumeration ≥10 distinct keys per
// address in 5 min, >20 auth failures per address in 10 min, 20 invalid
// signatures per key in 5 min, 10 ip_not_whitelisted per key in 10 min).
type NoiseRates struct {
	// Guessers: addresses, per key-day, that try 1–4 invalid keys (typos,
	// old configs, scanners) spread over up to 30 minutes, 401
	// invalid_api_key. About 2.5 events each.
	Guessers float64
	// BadSignatures: single 401 invalid_signature requests per signing
	// key-day from the key's own address with a sane clock (a signer bug, a
	// body changed after signing).
	BadSignatures float64
	// OutsideAllowlist: single requests per allowlisted key-day from an
	// address outside its allowlist (a developer's laptop, a new CI runner),
	// rejected 401 ip_not_whitelisted by the gateway.
	OutsideAllowlist float64
	// Retries: episodes per key-day, shared out by traffic: a request fails
	// 429 rate_limited or 503 service_unavailable and the client retries it
	// 1–3 times about a second apart (new request ids); the last retry
	// usually succeeds. Capped at 1% of the key's requests in each hour.
	Retries float64
	// Moves: keys per 100 key-days whose client moves to a new host for
	// good: a new address inside the allowlist, or a new network for a key
	// without one.
	Moves float64
}

// DefaultNoiseRates are the rates at Config.Noise 1: about 20 noise events
// per active key and day (3.75 guesses, 1 bad signature, 0.5 outside the
// allowlist, ~14 in retries) and a key moving hosts every 150 key-days.
func DefaultNoiseRates() NoiseRates {
	return NoiseRates{Guessers: 1.5, BadSignatures: 1, OutsideAllowlist: 0.5, Retries: 6, Moves: 100.0 / 150}
}

// Noise error codes beyond the gateway's authentication codes.
const CodeServiceUnavailable = "service_unavailable"

// streamNoise seeds the noise: one stream per hour, one for the moves.
const streamNoise = 0x6e6f6973655f5f5f

// noiseEvent is one generated noise event waiting to be emitted.
type noiseEvent struct {
	tms int64
	seq int
	ev  Event
}

// noiseSource streams the noise hour by hour: each hour's episodes are drawn
// from that hour's own RNG stream, so the noise does not depend on the rest
// of the traffic. Episodes may run into later hours; pending holds what is
// generated and not yet emitted, in time order.
type noiseSource struct {
	g       *Generator
	r       *rng
	rates   NoiseRates
	pending []noiseEvent
	next    int64 // start of the next hour to generate
	seq     int

	ok  bool
	tms int64
	ev  Event
}

func newNoiseSource(g *Generator) *noiseSource {
	return &noiseSource{g: g, r: newRNG(g.cfg.Seed, streamNoise), rates: DefaultNoiseRates(), next: g.start}
}

// advance prepares the next noise event, or sets ok to false at the end.
func (s *noiseSource) advance() {
	if s.g.cfg.Noise <= 0 {
		s.ok = false
		return
	}
	for s.next < s.g.end && (len(s.pending) == 0 || s.pending[0].tms >= s.next) {
		s.generateHour()
	}
	if len(s.pending) == 0 {
		s.ok = false
		return
	}
	e := s.pending[0]
	s.pending = s.pending[1:]
	s.ok, s.tms, s.ev = true, e.tms, e.ev
}

// generateHour draws the episodes starting in the hour (or partial hour)
// at s.next.
func (s *noiseSource) generateHour() {
	g := s.g
	hourIdx := floorDiv(s.next, hourMs)
	from, to := s.next, min((hourIdx+1)*hourMs, g.end)
	s.next = to
	r := s.r
	r.reseed(g.cfg.Seed, streamNoise^mix64(uint64(hourIdx)))
	f := g.cfg.Noise * seconds(to-from) / 86400
	h := hourOfDay(from)
	at := func() int64 { return from + r.int63n(to-from) }

	keys := g.noiseKeys()
	for range poisson(r, s.rates.Guessers*float64(len(keys))*f) {
		s.guesser(at())
	}
	total := 0.0
	for _, ki := range keys {
		total += ki.rate * ki.profile[h]
	}
	for _, ki := range keys {
		// The key's own episodes follow its daily profile.
		w := ki.profile[h]
		if ki.signed > 0 {
			for range poisson(r, s.rates.BadSignatures*f*w) {
				s.badSignature(ki, at())
			}
		}
		if len(ki.allow) > 0 {
			for range poisson(r, s.rates.OutsideAllowlist*f*w) {
				s.outsideAllowlist(ki, at())
			}
		}
		if total > 0 {
			share := ki.rate * ki.profile[h] / total
			lambda := min(s.rates.Retries*float64(len(keys))*f*share, 0.01*ki.rate*ki.profile[h]*seconds(to-from))
			for range poisson(r, lambda) {
				s.retry(ki, at())
			}
		}
	}
	slices.SortStableFunc(s.pending, func(a, b noiseEvent) int {
		if a.tms != b.tms {
			return int(a.tms - b.tms)
		}
		return a.seq - b.seq
	})
}

// add queues ev at tms, dropping it past the window's end.
func (s *noiseSource) add(tms int64, ev *Event) {
	if tms >= s.g.end {
		return
	}
	ev.TS = time.UnixMilli(tms).UTC()
	s.pending = append(s.pending, noiseEvent{tms: tms, seq: s.seq, ev: *ev})
	s.seq++
}

// guesser: an address tries 1–4 keys that do not exist (sometimes the same
// mistyped key twice) over up to 30 minutes.
func (s *noiseSource) guesser(tms int64) {
	g, r := s.g, s.r
	blocks := g.resBlocks
	if r.chance(0.5) {
		blocks = g.atkBlocks
	}
	ip := g.foreignIP(r, blocks, r.chance(0.1)).String()
	ua := pick(r, g.scannerUAs)
	salt := r.u64()
	n := r.between(1, 4)
	for i := range n {
		var ev Event
		ev.AuthMethod = AuthAPIKey
		env := EnvLive
		if r.chance(0.2) {
			env = EnvTest
		}
		ev.APIKey = randomSecret(salt, i/2, env) // pairs repeat a key
		if r.chance(0.5) {
			ev.Env = env
		}
		ev.ClientIP, ev.UserAgent = ip, ua
		g.shape(&ev, r, g.pickEndpoint(r), nil)
		g.fail(&ev, r, http.StatusUnauthorized, CodeInvalidAPIKey)
		s.add(tms+r.int63n(30*60_000), &ev)
	}
}

// badSignature: one signed request of ki from its usual address with a
// wrong signature and a sane clock.
func (s *noiseSource) badSignature(ki *keyInfo, tms int64) {
	g, r := s.g, s.r
	var ev Event
	g.keyAuth(&ev, r, ki)
	ips := ki.ipsAt(tms)
	ev.ClientIP = ips[r.intn(len(ips))]
	g.shape(&ev, r, g.pickEndpoint(r), ki.acct)
	ev.Signed = true
	ev.SignatureTS = floorDiv(tms, 1000) + int64(r.between(-30, 30))
	g.fail(&ev, r, http.StatusUnauthorized, CodeInvalidSignature)
	s.add(tms, &ev)
}

// outsideAllowlist: one request of ki from an address outside its
// allowlist, rejected by the gateway.
func (s *noiseSource) outsideAllowlist(ki *keyInfo, tms int64) {
	g, r := s.g, s.r
	var ev Event
	g.keyAuth(&ev, r, ki)
	blocks := g.resBlocks
	if r.chance(0.5) {
		blocks = g.srvBlocks
	}
	ev.ClientIP = g.foreignIP(r, blocks, r.chance(0.2)).String()
	if r.chance(0.5) {
		ev.UserAgent = "curl/8.5.0"
	}
	g.shape(&ev, r, g.pickEndpoint(r), ki.acct)
	if r.float() < ki.signed {
		signNormal(&ev, r, tms)
	}
	g.fail(&ev, r, http.StatusUnauthorized, CodeIPNotWhitelisted)
	s.add(tms, &ev)
}

// retry: a request of ki fails 429 or 503 and is retried 1–3 times about a
// second apart; the last attempt succeeds four times in five.
func (s *noiseSource) retry(ki *keyInfo, tms int64) {
	g, r := s.g, s.r
	var base Event
	g.keyAuth(&base, r, ki)
	ips := ki.ipsAt(tms)
	base.ClientIP = ips[r.intn(len(ips))]
	g.shape(&base, r, g.pickEndpoint(r), ki.acct)
	status, code := http.StatusTooManyRequests, CodeRateLimited
	if r.chance(0.4) {
		status, code = http.StatusServiceUnavailable, CodeServiceUnavailable
	}
	signed := ki.signed > 0 && r.float() < ki.signed
	retries := r.between(1, 3)
	recovers := r.chance(0.8)
	for i := 0; i <= retries; i++ {
		ev := base
		if signed {
			signNormal(&ev, r, tms)
		}
		if i < retries || !recovers {
			g.fail(&ev, r, status, code)
		}
		s.add(tms, &ev)
		tms += int64(r.between(700, 1500)) << min(i, 2) / 2 // ~0.35–0.75 s, then ~1 s, then ~1.5 s
	}
}

// noiseKeys returns the keys noise applies to: ordinary keys with normal
// traffic (the scenarios' keys stay clean, so their incidents stay exact).
func (g *Generator) noiseKeys() []*keyInfo {
	var out []*keyInfo
	for i := range g.info {
		if ki := &g.info[i]; ki.ordinary && ki.rate > 0 {
			out = append(out, ki)
		}
	}
	return out
}

// planMoves picks the keys whose client moves to a new host during the
// window, from its own RNG stream: Moves per 100 key-days, each key at most
// once, at a time in the middle 80% of the window.
func (g *Generator) planMoves() {
	if g.cfg.Noise <= 0 {
		return
	}
	r := newRNG(g.cfg.Seed, streamNoise^0x6d6f766573)
	keys := g.noiseKeys()
	days := seconds(g.end-g.start) / 86400
	want := DefaultNoiseRates().Moves * g.cfg.Noise * float64(len(keys)) * days / 100
	n := int(want)
	if r.chance(want - float64(n)) {
		n++
	}
	for _, i := range r.r.Perm(len(keys)) {
		if n == 0 {
			return
		}
		ki := keys[i]
		var ips []string
		if len(ki.allow) == 0 {
			a := g.foreignIP(r, g.srvBlocks, false)
			ips = neighbours(r, a, r.between(1, 2))
		} else {
			// A new host inside the allowlist: a network with room for one.
			var nets []int
			for j, p := range ki.allow {
				if p.Addr().Is6() || p.Bits() <= 30 {
					nets = append(nets, j)
				}
			}
			if len(nets) == 0 {
				continue
			}
			for tries := 0; tries < 8 && len(ips) == 0; tries++ {
				a := hostIn(r, ki.allow[pick(r, nets)]).String()
				if !slices.Contains(ki.homeIPs, a) {
					ips = []string{a}
				}
			}
			if len(ips) == 0 {
				continue
			}
		}
		d := g.end - g.start
		ki.moveAt = g.start + d/10 + r.int63n(max(1, d*8/10))
		ki.movedIPs = ips
		n--
	}
}

// ipsAt returns the addresses ki's client uses at tms.
func (ki *keyInfo) ipsAt(tms int64) []string {
	if tms >= ki.moveAt {
		return ki.movedIPs
	}
	return ki.homeIPs
}

// poisson draws a Poisson count with mean lambda (Knuth; lambda is small
// here, and large means fall back to a rounded normal).
func poisson(r *rng, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.norm())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.float()
		if p <= l {
			return k
		}
		k++
	}
}
