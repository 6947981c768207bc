package gen

import (
	"fmt"
	"math"
	"net/http"
	"slices"
)

// planUsageSpike: a normally quiet key runs a loop of quotes and orders at
// 12–20× its peak-hour rate from its usual addresses, all successful. The
// key's normal traffic continues underneath.
func planUsageSpike(g *Generator, r *rng, _, length int64) (plan, Incident) {
	ki := &g.info[g.role[roleSpike]]
	mult := float64(r.between(12, 20))
	peak := slices.Max(ki.profile[:])
	p := plan{n: max(400, int(math.Ceil(mult*ki.rate*peak*seconds(length))))}
	eps := []int{epQuotes, epQuotes, epQuotes, epQuotes, epOrderCreate, epOrderCreate, epPositions}
	p.fill = func(r *rng, _ int, tms int64, ev *Event) {
		g.keyAuth(ev, r, ki)
		ev.ClientIP = ki.homeIPs[r.intn(len(ki.homeIPs))]
		g.shape(ev, r, pick(r, eps), ki.acct)
		if r.float() < ki.signed {
			signNormal(ev, r, tms)
		}
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIPs: slices.Clone(ki.homeIPs),
		Description: fmt.Sprintf("key %s (normally %.3f req/s, at most %.3f) sent %d extra successful requests, %.2f req/s",
			ki.id, ki.rate, ki.rate*peak, p.n, float64(p.n)/seconds(length)),
	}
}

// planErrorRateJump: for an hour about 40% of one key's requests fail —
// mostly 500s, some 400s and 429s — at its usual rate; these replace the
// key's normal traffic for the hour.
func planErrorRateJump(g *Generator, r *rng, start, length int64) (plan, Incident) {
	ki := &g.info[g.role[roleErrJump]]
	rate := ki.rate * ki.profile[hourOfDay(start)]
	p := plan{n: max(300, int(math.Ceil(rate*seconds(length))))}
	ki.supFrom, ki.supTo = start, start+length
	p.fill = func(r *rng, _ int, tms int64, ev *Event) {
		g.fillKey(ev, r, ki, tms)
		if ev.ErrorCode != "" || !r.chance(0.4) {
			return
		}
		switch u := r.float(); {
		case u < 0.55:
			g.fail(ev, r, http.StatusInternalServerError, CodeInternalError)
		case u < 0.85:
			g.fail(ev, r, http.StatusBadRequest, CodeBadRequest)
		default:
			g.fail(ev, r, http.StatusTooManyRequests, CodeRateLimited)
		}
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIPs: slices.Clone(ki.homeIPs),
		Description: fmt.Sprintf("key %s: ~40%% of %d requests fail (500 internal_error, 400 bad_request, 429 rate_limited) against ~1.5%% normally",
			ki.id, p.n),
	}
}

// planDormantKeyReturns: a key without traffic for 50–80 days is used
// again, successfully, from two addresses in a network it never used.
func planDormantKeyReturns(g *Generator, r *rng, _, _ int64) (plan, Incident) {
	idx := g.role[roleDormant]
	ki, k := &g.info[idx], &g.keys[idx]
	ips := neighbours(r, g.foreignIP(r, g.atkBlocks, false), 2)
	ua := "python-requests/2.32.3"
	p := plan{n: r.between(120, 200)}
	p.fill = func(r *rng, _ int, tms int64, ev *Event) {
		g.keyAuth(ev, r, ki)
		ev.ClientIP = pick(r, ips)
		ev.UserAgent = ua
		g.shape(ev, r, g.pickEndpoint(r), ki.acct)
		if r.float() < ki.signed {
			signNormal(ev, r, tms)
		}
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIP:  ips[0],
		ClientIPs: ips,
		Description: fmt.Sprintf("key %s, last used %s (%d days before the window), used again %d times from %s/24, outside its home network %s",
			ki.id, k.LastUsedAt.Format("2006-01-02"), int(g.cfg.Start.Sub(k.LastUsedAt)/day), p.n, ips[0], k.HomeNetwork),
	}
}

// planBrowserExposedKey: a live key embedded in a web page: calls come from
// many residential addresses with an Origin header and browser user agents,
// unsigned. The key's server traffic continues as usual.
func planBrowserExposedKey(g *Generator, r *rng, _, length int64) (plan, Incident) {
	ki := &g.info[g.role[roleBrowser]]
	users := make([]string, r.between(12, 25))
	for i := range users {
		users[i] = g.foreignIP(r, g.resBlocks, r.chance(0.3)).String()
	}
	origin := "https://" + pick(r, []string{"app.tradewidget.io", "dashboard.quantfolio.app", "portfolio-viewer.netlify.app", "my-trading-dashboard.vercel.app"})
	uas := browserUserAgents()
	eps := []int{epQuotes, epQuotes, epQuotes, epPositions, epPositions, epBalance, epOrdersList}
	p := plan{n: r.between(150, 260)}
	p.fill = func(r *rng, _ int, _ int64, ev *Event) {
		g.keyAuth(ev, r, ki)
		u := r.intn(len(users))
		ev.ClientIP = users[u]
		ev.UserAgent = uas[u%len(uas)]
		ev.Origin = origin
		g.shape(ev, r, pick(r, eps), ki.acct)
		if r.chance(0.01) {
			g.fail(ev, r, http.StatusTooManyRequests, CodeRateLimited)
		}
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIPs: users,
		Description: fmt.Sprintf("live key %s called %d times over %v from %d browsers (Origin %s, Mozilla user agents)",
			ki.id, p.n, durationMs(length), len(users), origin),
	}
}
