package gen

import (
	"fmt"
	"math"
	"net/http"
	"time"
)

// planInvalidSignatureBurst: forged or probing requests on one key, signed
// with a wrong secret and a plausible timestamp, mostly from a few new VPS
// addresses and some from the key's own network.
func planInvalidSignatureBurst(g *Generator, r *rng, _, length int64) (plan, Incident) {
	ki := &g.info[g.role[roleSigBurst]]
	home := ki.homeIPs[0]
	attackers := neighbours(r, g.foreignIP(r, g.atkBlocks, false), 3)
	attackUA := pick(r, []string{"python-requests/2.31.0", "Go-http-client/1.1", "curl/8.5.0"})
	eps := []int{epOrderCreate, epOrderCreate, epOrderCreate, epBalance, epPositions}
	p := plan{n: r.between(190, 230)}
	p.fill = func(r *rng, _ int, tms int64, ev *Event) {
		g.keyAuth(ev, r, ki)
		if r.chance(0.15) {
			ev.ClientIP = home
		} else {
			ev.ClientIP = pick(r, attackers)
			ev.UserAgent = attackUA
		}
		g.shape(ev, r, pick(r, eps), ki.acct)
		ev.Signed = true
		ev.SignatureTS = floorDiv(tms, 1000) + int64(r.between(-60, 60))
		g.fail(ev, r, http.StatusUnauthorized, CodeInvalidSignature)
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIP:  attackers[0],
		ClientIPs: append(append([]string(nil), attackers...), home),
		Description: fmt.Sprintf("%d invalid_signature 401s in %v on key %s, ~85%% from %d new addresses in %s/24, signature_ts within ±60 s",
			p.n, durationMs(length), ki.id, len(attackers), attackers[0]),
	}
}

// planClockSkew: the key's client clock runs a steady 7–10 minutes fast, so
// each signed request is rejected; the requests come from its usual address
// at its usual rate (plus retries) and replace its normal traffic.
func planClockSkew(g *Generator, r *rng, start, length int64) (plan, Incident) {
	ki := &g.info[g.role[roleClockSkew]]
	skew := int64(r.between(420, 600))
	ip := ki.homeIPs[0]
	rate := ki.rate * ki.profile[hourOfDay(start)] * 1.3
	p := plan{n: max(200, int(math.Ceil(rate*seconds(length))))}
	ki.supFrom, ki.supTo = start, start+length
	p.fill = func(r *rng, _ int, tms int64, ev *Event) {
		g.keyAuth(ev, r, ki)
		ev.ClientIP = ip
		g.shape(ev, r, g.pickEndpoint(r), ki.acct)
		ev.Signed = true
		ev.SignatureTS = floorDiv(tms, 1000) + skew + int64(r.between(-1, 1))
		g.fail(ev, r, http.StatusUnauthorized, CodeInvalidSignature)
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIPs: []string{ip},
		Description: fmt.Sprintf("client clock of key %s runs %+d s ahead: all %d signed requests from its usual IP fail invalid_signature with signature_ts − ts ≈ %d s (benign)",
			ki.id, skew, p.n, skew),
	}
}

// planOutsideAllowlist: a key used from two addresses outside its allowlist
// (a developer at home, a new cloud region). The gateway rejects most with
// ip_not_whitelisted but lets every ninth through, as if its allowlist cache
// were stale, so detection has to check the registry.
func planOutsideAllowlist(g *Generator, r *rng, _, length int64) (plan, Incident) {
	ki := &g.info[g.role[roleOutsideAllow]]
	ips := []string{g.foreignIP(r, g.resBlocks, false).String(), g.foreignIP(r, g.srvBlocks, false).String()}
	p := plan{n: r.between(40, 70)}
	p.fill = func(r *rng, i int, tms int64, ev *Event) {
		g.keyAuth(ev, r, ki)
		ev.ClientIP = ips[i%2]
		g.shape(ev, r, g.pickEndpoint(r), ki.acct)
		if r.float() < ki.signed {
			signNormal(ev, r, tms)
		}
		if i%9 != 4 {
			g.fail(ev, r, http.StatusUnauthorized, CodeIPNotWhitelisted)
		}
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIP:  ips[0],
		ClientIPs: ips,
		Description: fmt.Sprintf("key %s used from %d IPs outside its allowlist over %v: %d rejected ip_not_whitelisted, %d let through with 2xx",
			ki.id, len(ips), durationMs(length), p.n-(p.n+4)/9, (p.n+4)/9),
	}
}

// planOutsideRejected: an ordinary live key with an allowlist is tried
// 5–9 times from one address outside it (its owner at home, say); the
// gateway rejects every request with ip_not_whitelisted. Fewer than the
// ip_not_whitelisted burst rule's 10, so it is evidence for a digest, not
// an alert. The key is drawn from the scenario's own stream.
func planOutsideRejected(g *Generator, r *rng, _, length int64) (plan, Incident) {
	var cands []*keyInfo
	for i := range g.info {
		if ki := &g.info[i]; ki.ordinary && ki.rate > 0 && ki.env == EnvLive && len(ki.allow) > 0 {
			cands = append(cands, ki)
		}
	}
	ki := &g.info[g.role[roleOutsideAllow]] // small registries: fall back to the outside_allowlist key
	if len(cands) > 0 {
		ki = pick(r, cands)
	}
	ip := g.foreignIP(r, g.resBlocks, r.chance(0.3)).String()
	p := plan{n: r.between(5, 9)}
	p.fill = func(r *rng, _ int, tms int64, ev *Event) {
		g.keyAuth(ev, r, ki)
		ev.ClientIP = ip
		g.shape(ev, r, g.pickEndpoint(r), ki.acct)
		if r.float() < ki.signed {
			signNormal(ev, r, tms)
		}
		g.fail(ev, r, http.StatusUnauthorized, CodeIPNotWhitelisted)
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIPs: []string{ip},
		Description: fmt.Sprintf("key %s tried %d times over %v from %s, outside its allowlist: all rejected ip_not_whitelisted, none let through",
			ki.id, p.n, durationMs(length), ip),
	}
}

// planKeyEnumeration: one address tries many random keys, each once or
// twice; none exists, so the gateway knows no key_id.
func planKeyEnumeration(g *Generator, r *rng, _, length int64) (plan, Incident) {
	ip := g.foreignIP(r, g.atkBlocks, false).String()
	ua := pick(r, []string{"python-requests/2.31.0", "Go-http-client/1.1"})
	salt := r.u64()
	p := plan{n: r.between(130, 170)}
	distinct := (p.n-1)*9/10 + 1
	eps := []int{epPositions, epPositions, epOrdersList, epQuotes}
	p.fill = func(r *rng, i int, _ int64, ev *Event) {
		idx := i * 9 / 10
		env := EnvLive
		if idx%7 == 3 {
			env = EnvTest
		}
		ev.AuthMethod = AuthAPIKey
		ev.APIKey = randomSecret(salt, idx, env)
		if r.chance(0.5) {
			ev.Env = env
		}
		ev.ClientIP = ip
		ev.UserAgent = ua
		g.shape(ev, r, pick(r, eps), nil)
		g.fail(ev, r, http.StatusUnauthorized, CodeInvalidAPIKey)
	}
	return p, Incident{
		ClientIPs: []string{ip},
		Description: fmt.Sprintf("%s tried %d distinct random keys in %d requests over %v, all 401 invalid_api_key",
			ip, distinct, p.n, durationMs(length)),
	}
}

// planExpiredKeyInUse: a forgotten job polls every ~30 s with a key whose
// expiry has passed; the gateway knows the key and says expired_api_key.
func planExpiredKeyInUse(g *Generator, r *rng, _, length int64) (plan, Incident) {
	idx := g.role[roleExpired]
	ki, k := &g.info[idx], &g.keys[idx]
	ip := ki.homeIPs[0]
	p := plan{n: max(40, int(length/30_000))}
	p.fill = func(r *rng, i int, tms int64, ev *Event) {
		g.keyAuth(ev, r, ki)
		ev.ClientIP = ip
		ep := epPositions
		if i%2 == 1 {
			ep = epBalance
		}
		g.shape(ev, r, ep, ki.acct)
		if ki.signed > 0 {
			signNormal(ev, r, tms)
		}
		g.fail(ev, r, http.StatusUnauthorized, CodeExpiredAPIKey)
	}
	return p, Incident{
		KeyID:     ki.id,
		ClientIPs: []string{ip},
		Description: fmt.Sprintf("key %s expired %s (%d days before the window) still polled %d times from %s, 401 expired_api_key",
			ki.id, k.ExpiresAt.Format(time.DateOnly), int(g.cfg.Start.Sub(k.ExpiresAt)/day), p.n, ip),
	}
}

// planAuthFailureBurstIP: one address fails authentication in several ways
// across keys: random keys (invalid_api_key), real allowlisted keys from
// outside their allowlist (ip_not_whitelisted), a real open key with a bad
// signature (invalid_signature). No single key sees more than a few.
func planAuthFailureBurstIP(g *Generator, r *rng, _, length int64) (plan, Incident) {
	ip := g.foreignIP(r, g.atkBlocks, false).String()
	var allowed, open []*keyInfo
	for i := range g.info {
		ki := &g.info[i]
		if !ki.ordinary || ki.rate == 0 || ki.env != EnvLive {
			continue
		}
		if len(ki.allow) > 0 {
			allowed = append(allowed, ki)
		} else {
			open = append(open, ki)
		}
	}
	for i := len(allowed) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		allowed[i], allowed[j] = allowed[j], allowed[i]
	}
	allowed = allowed[:min(4, len(allowed))]
	salt := r.u64()
	ua := "python-requests/2.28.1"
	p := plan{n: r.between(30, 45)}
	p.fill = func(r *rng, i int, tms int64, ev *Event) {
		u := r.float()
		switch {
		case u < 0.25 && len(allowed) > 0:
			ki := allowed[r.intn(len(allowed))]
			g.keyAuth(ev, r, ki)
			g.shape(ev, r, g.pickEndpoint(r), ki.acct)
			g.fail(ev, r, http.StatusUnauthorized, CodeIPNotWhitelisted)
		case u < 0.4 && len(open) > 0:
			ki := open[r.intn(len(open))]
			g.keyAuth(ev, r, ki)
			g.shape(ev, r, g.pickEndpoint(r), ki.acct)
			ev.Signed = true
			ev.SignatureTS = floorDiv(tms, 1000) + int64(r.between(-30, 30))
			g.fail(ev, r, http.StatusUnauthorized, CodeInvalidSignature)
		default:
			ev.AuthMethod = AuthAPIKey
			ev.APIKey = randomSecret(salt, i, EnvLive)
			g.shape(ev, r, g.pickEndpoint(r), nil)
			g.fail(ev, r, http.StatusUnauthorized, CodeInvalidAPIKey)
		}
		ev.ClientIP = ip
		ev.UserAgent = ua
	}
	return p, Incident{
		ClientIPs: []string{ip},
		Description: fmt.Sprintf("%s failed authentication %d times in %v across keys (invalid_api_key, ip_not_whitelisted, invalid_signature)",
			ip, p.n, durationMs(length)),
	}
}
