package gen

import (
	"math"
	"time"
)

// normalSource streams normal traffic hour by hour: each hour gets its share
// of events by cumulative rounding of the expected count, spread evenly with
// jitter, each attributed to a source drawn from that hour's weights.
type normalSource struct {
	g    *Generator
	r    *rng // per-event draws
	segR *rng // hourly noise
	w    []float64
	tab  alias

	cur      int64 // start of the next segment
	segStart int64
	step     float64
	j, n     int
	cum      float64 // expected events so far
	done     int64   // events scheduled so far

	ok  bool
	tms int64
	ev  Event
}

func newNormalSource(g *Generator) *normalSource {
	return &normalSource{
		g:    g,
		r:    newRNG(g.cfg.Seed, streamNormal),
		segR: newRNG(g.cfg.Seed, streamSegment),
		w:    make([]float64, len(g.info)+2),
		cur:  g.start,
	}
}

// advance prepares the next event, or sets ok to false at the end.
func (s *normalSource) advance() {
	for s.j >= s.n {
		if !s.nextSegment() {
			s.ok = false
			return
		}
	}
	t := s.segStart + int64((float64(s.j)+s.r.float())*s.step)
	s.j++
	s.ok, s.tms = true, t
	s.ev = Event{TS: time.UnixMilli(t).UTC()}
	s.g.fillNormal(&s.ev, s.r, &s.tab, t)
}

// nextSegment moves to the next hour (or partial hour) of the window.
func (s *normalSource) nextSegment() bool {
	g := s.g
	if s.cur >= g.end {
		return false
	}
	hourIdx := floorDiv(s.cur, hourMs)
	segEnd := min((hourIdx+1)*hourMs, g.end)
	total := g.segWeights(s.segR, hourIdx, s.w)
	s.cum += total * seconds(segEnd-s.cur)
	target := int64(math.Round(s.cum))
	if segEnd == g.end && g.cfg.Events > 0 {
		target = int64(g.cfg.Events)
	}
	s.n = int(max(0, target-s.done))
	s.done = max(s.done, target)
	if s.n > 0 {
		s.tab.build(s.w, total)
		s.step = float64(segEnd-s.cur) / float64(s.n)
	}
	s.segStart, s.cur, s.j = s.cur, segEnd, 0
	return true
}

// fillNormal fills ev with a normal request at tms. A key whose traffic a
// scenario replaces at tms is skipped in favour of another draw.
func (g *Generator) fillNormal(ev *Event, r *rng, tab *alias, tms int64) {
	k := len(g.info)
	for tries := 0; tries < 16; tries++ {
		e := tab.sample(r)
		switch {
		case e < k:
			ki := &g.info[e]
			if tms >= ki.supFrom && tms < ki.supTo {
				continue
			}
			g.fillKey(ev, r, ki, tms)
		case e == k:
			g.fillOAuth(ev, r)
		default:
			g.fillAnonymous(ev, r)
		}
		return
	}
	g.fillOAuth(ev, r)
}

// scenarioSource streams one scenario's planned events.
type scenarioSource struct {
	g     *Generator
	p     *plan
	r     *rng
	order int
	i     int
	step  float64
	tms   int64
	ev    Event
}

func newScenarioSource(g *Generator, p *plan, order int) *scenarioSource {
	return &scenarioSource{g: g, p: p, r: newRNG(g.cfg.Seed, p.stream), order: order, step: float64(p.length) / float64(max(1, p.n))}
}

// advance prepares the next event and reports whether there was one.
func (s *scenarioSource) advance() bool {
	if s.i >= s.p.n {
		return false
	}
	t := s.p.start + int64((float64(s.i)+s.r.float())*s.step)
	s.tms = t
	s.ev = Event{TS: time.UnixMilli(t).UTC()}
	s.p.fill(s.r, s.i, t, &s.ev)
	s.i++
	return true
}

// sourceHeap is a min-heap of scenario sources by (next time, order).
type sourceHeap []*scenarioSource

func (h sourceHeap) less(i, j int) bool {
	if h[i].tms != h[j].tms {
		return h[i].tms < h[j].tms
	}
	return h[i].order < h[j].order
}

func (h *sourceHeap) push(s *scenarioSource) {
	*h = append(*h, s)
	for i := len(*h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		(*h)[i], (*h)[p] = (*h)[p], (*h)[i]
		i = p
	}
}

func (h *sourceHeap) pop() {
	n := len(*h) - 1
	(*h)[0] = (*h)[n]
	*h = (*h)[:n]
	h.fix()
}

// fix restores the heap after the root changed.
func (h sourceHeap) fix() {
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(h) && h.less(l, m) {
			m = l
		}
		if r := l + 1; r < len(h) && h.less(r, m) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
