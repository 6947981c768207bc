package gen

import (
	"context"
	"fmt"
	"math"
	"net/netip"
)

// Generator produces the synthetic traffic of one Config. It is immutable
// after New, so Keys, Incidents and Run may be called concurrently and Run
// any number of times, always with the same result.
type Generator struct {
	cfg        Config
	start, end int64 // window in unix milliseconds

	accounts  []account
	clients   []oauthClient
	keys      []Key
	info      []keyInfo
	role      [numRoles]int // key index of each role
	known     []netip.Prefix
	paths     pathPools
	endpoints [numEndpoints]endpoint
	epTotal   int

	oauthRate, noneRate float64
	oauthProfile        [24]float64
	clientTotal         float64

	srvBlocks, atkBlocks, resBlocks ipBlocks
	scannerUAs                      []string

	plans     []plan
	incidents []Incident
}

// New validates cfg, fills its defaults, and builds the key registry and the
// scenario plans. It returns every configuration problem at once; an unknown
// scenario name is reported together with the valid ones.
func New(cfg Config) (*Generator, error) {
	cfg, names, err := cfg.normalize()
	if err != nil {
		return nil, fmt.Errorf("validate config: %w", err)
	}
	g := &Generator{
		cfg:        cfg,
		start:      cfg.Start.UnixMilli(),
		end:        cfg.Start.Add(cfg.Duration).UnixMilli(),
		endpoints:  endpointTable(),
		srvBlocks:  serverBlocks(),
		atkBlocks:  attackerBlocks(),
		resBlocks:  residentialBlocks(),
		scannerUAs: scannerUserAgents(),
	}
	for _, e := range g.endpoints {
		g.epTotal += e.weight
	}
	g.buildRegistry(newRNG(cfg.Seed, streamRegistry))
	for _, c := range g.clients {
		g.clientTotal += c.weight
	}
	if cfg.Events > 0 {
		g.rescale(float64(cfg.Events) / g.expectedEvents())
	}
	g.planScenarios(names)
	g.planMoves()
	return g, nil
}

// Config returns the configuration in use, with defaults filled in.
func (g *Generator) Config() Config {
	c := g.cfg
	c.Scenarios = append([]string(nil), c.Scenarios...)
	return c
}

// Keys returns a copy of the key registry, sorted by id.
func (g *Generator) Keys() []Key {
	out := make([]Key, len(g.keys))
	for i, k := range g.keys {
		out[i] = k.clone()
	}
	return out
}

// Incidents returns a copy of the ground truth: one Incident per injected
// scenario, in the order of Scenarios.
func (g *Generator) Incidents() []Incident {
	out := make([]Incident, len(g.incidents))
	for i, inc := range g.incidents {
		inc.ClientIPs = append([]string(nil), inc.ClientIPs...)
		out[i] = inc
	}
	return out
}

// expectedEvents returns the expected number of normal events in the window
// at the current rates.
func (g *Generator) expectedEvents() float64 {
	r := newRNG(g.cfg.Seed, streamSegment)
	w := make([]float64, len(g.info)+2)
	total := 0.0
	for cur := g.start; cur < g.end; {
		hourIdx := floorDiv(cur, hourMs)
		segEnd := min((hourIdx+1)*hourMs, g.end)
		total += g.segWeights(r, hourIdx, w) * seconds(segEnd-cur)
		cur = segEnd
	}
	return total
}

// rescale multiplies every normal rate by f.
func (g *Generator) rescale(f float64) {
	if f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return
	}
	for i := range g.info {
		g.info[i].rate *= f
		g.keys[i].BaseRate = g.info[i].rate
	}
	g.oauthRate *= f
	g.noneRate *= f
}

// Run generates every event of the window in time order — normal traffic
// merged with the scenarios and the background noise — and calls emit for each, with a request id
// unique within the run. Events with equal timestamps come in a fixed order.
// Memory use does not grow with the number of events. Run stops at the first
// error from emit, returning it wrapped, and checks ctx every few thousand
// events, returning ctx.Err() once it is done.
func (g *Generator) Run(ctx context.Context, emit func(Event) error) error {
	normal := newNormalSource(g)
	normal.advance()
	noise := newNoiseSource(g)
	noise.advance()
	h := make(sourceHeap, 0, len(g.plans))
	for i := range g.plans {
		s := newScenarioSource(g, &g.plans[i], i)
		if s.advance() {
			h.push(s)
		}
	}
	salt := mix64(uint64(g.cfg.Seed) ^ 0x72657175657374)
	for counter := uint64(0); ; counter++ {
		if counter&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var ev *Event
		var top *scenarioSource
		fromNoise := false
		switch {
		case noise.ok && (!normal.ok || noise.tms < normal.tms) && (len(h) == 0 || noise.tms < h[0].tms):
			ev, fromNoise = &noise.ev, true
		case len(h) > 0 && (!normal.ok || h[0].tms < normal.tms):
			top = h[0]
			ev = &top.ev
		case normal.ok:
			ev = &normal.ev
		default:
			return nil
		}
		ev.RequestID = requestID(counter, salt)
		if err := emit(*ev); err != nil {
			return fmt.Errorf("emit event %d: %w", counter, err)
		}
		switch {
		case fromNoise:
			noise.advance()
		case top == nil:
			normal.advance()
		case top.advance():
			h.fix()
		default:
			h.pop()
		}
	}
}
