package gen

import (
	"math/rand/v2"
	"net/http"
)

// Shares of normal api-key requests.
const (
	envOmitShare = 0.06 // env left out for the ingester to derive
	altUAShare   = 0.03 // sent with curl instead of the key's usual client
)

// Background error rates of normal traffic, cumulative thresholds on one
// uniform draw. Legit invalid_signature noise applies to signed requests.
const (
	bgInvalidSig = 0.002
	bgRateLimit  = 0.006
	bgBadRequest = 0.010
	bgNotFound   = 0.0145
	bgInternal   = 0.016
)

// keyAuth fills the authentication fields of a request made with key ki by
// its usual client.
func (g *Generator) keyAuth(ev *Event, r *rng, ki *keyInfo) {
	ev.AuthMethod = AuthAPIKey
	ev.APIKey = ki.secret
	ev.KeyID = ki.id
	ev.AccountID = ki.accountID
	if !r.chance(envOmitShare) {
		ev.Env = ki.env
	}
	ev.UserAgent = ki.ua
}

// signNormal signs ev the way a healthy client does: the timestamp header is
// taken just before sending, within ±2 s of the gateway's clock.
func signNormal(ev *Event, r *rng, tms int64) {
	ev.Signed = true
	ev.SignatureTS = floorDiv(tms, 1000) + int64(r.between(-2, 1))
}

// fillKey fills a normal request of key ki at tms, with background errors.
func (g *Generator) fillKey(ev *Event, r *rng, ki *keyInfo, tms int64) {
	g.keyAuth(ev, r, ki)
	if r.chance(altUAShare) {
		ev.UserAgent = "curl/8.5.0"
	}
	ips := ki.ipsAt(tms)
	ev.ClientIP = ips[r.intn(len(ips))]
	ep := g.pickEndpoint(r)
	g.shape(ev, r, ep, ki.acct)
	signed := ki.signed > 0 && r.float() < ki.signed
	if signed {
		signNormal(ev, r, tms)
	}
	g.backgroundError(ev, r, ep, signed)
}

// backgroundError turns a small share of normal requests into errors.
func (g *Generator) backgroundError(ev *Event, r *rng, ep int, signed bool) {
	switch u := r.float(); {
	case u >= bgInternal:
	case signed && u < bgInvalidSig:
		g.fail(ev, r, http.StatusUnauthorized, CodeInvalidSignature)
	case u < bgRateLimit:
		g.fail(ev, r, http.StatusTooManyRequests, CodeRateLimited)
	case u < bgBadRequest:
		g.fail(ev, r, http.StatusBadRequest, CodeBadRequest)
	case u < bgNotFound:
		if g.endpoints[ep].hasID {
			g.fail(ev, r, http.StatusNotFound, CodeNotFound)
		}
	default:
		g.fail(ev, r, http.StatusInternalServerError, CodeInternalError)
	}
}

// fillOAuth fills a normal request of a third-party app.
func (g *Generator) fillOAuth(ev *Event, r *rng) {
	c := &g.clients[g.pickClient(r)]
	a := &g.accounts[c.accounts[r.intn(len(c.accounts))]]
	ev.AuthMethod = AuthOAuth
	ev.OAuthClientID = c.id
	ev.Env = EnvLive
	ev.AccountID = a.id
	ev.UserAgent = c.ua
	ev.ClientIP = c.ips[r.intn(len(c.ips))]
	ep := epToken
	if !r.chance(0.03) {
		ep = g.pickEndpoint(r)
	}
	g.shape(ev, r, ep, a)
	if ep == epToken {
		ev.Status = http.StatusOK
	}
	g.backgroundError(ev, r, ep, false)
}

// pickClient draws an OAuth client by weight.
func (g *Generator) pickClient(r *rng) int {
	x := r.float() * g.clientTotal
	for i := range g.clients {
		x -= g.clients[i].weight
		if x < 0 {
			return i
		}
	}
	return 0
}

// fillAnonymous fills a request without credentials from a random address:
// scanners and misconfigured clients, always 401 invalid_api_key.
func (g *Generator) fillAnonymous(ev *Event, r *rng) {
	ev.AuthMethod = AuthNone
	blocks := g.resBlocks
	if r.chance(0.5) {
		blocks = g.atkBlocks
	}
	ev.ClientIP = blocks.v4In(r).String()
	ev.UserAgent = pick(r, g.scannerUAs)
	g.shape(ev, r, g.pickEndpoint(r), nil)
	ev.BytesIn = 0
	g.fail(ev, r, http.StatusUnauthorized, CodeInvalidAPIKey)
}

// randomSecret returns a syntactically valid key no registry entry has,
// derived from salt and idx alone so fills stay stateless.
func randomSecret(salt uint64, idx int, env string) string {
	p := rand.NewPCG(salt, uint64(idx))
	b := make([]byte, 0, 8+secretLength)
	b = append(b, "bk_"...)
	b = append(b, env...)
	b = append(b, '_')
	for range secretLength {
		b = append(b, alnumChars[p.Uint64()%uint64(len(alnumChars))])
	}
	return string(b)
}

func scannerUserAgents() []string {
	return []string{
		"curl/8.5.0", "curl/7.88.1", "python-requests/2.31.0", "Go-http-client/1.1",
		"Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)", "PostmanRuntime/7.39.0",
	}
}

func browserUserAgents() []string {
	return []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
	}
}
