package gen

import (
	"math"
	"net/http"
	"strings"
)

// pathKind says how an endpoint's path is filled in.
type pathKind uint8

const (
	pathFixed pathKind = iota
	pathQuotes
	pathBars
	pathInstrument
	pathOrder
	pathBalance
	pathAccount
)

// endpoint describes one API operation and the shape of its traffic.
type endpoint struct {
	method string
	path   string
	kind   pathKind
	weight int
	// bytes_in range (request body) and bytes_out range of a success.
	inMin, inMax   int
	outMin, outMax int
	// latency is the median latency of a success in milliseconds.
	latency float64
	// hasID marks paths naming a resource, which can answer 404.
	hasID bool
}

// Indexes into the endpoint table, for scenarios that want a specific one.
const (
	epQuotes = iota
	epBars
	epOrdersList
	epOrdersOpen
	epOrderCreate
	epOrderGet
	epOrderCancel
	epPositions
	epBalance
	epAccount
	epFills
	epInstrument
	epToken
	numEndpoints
)

// endpointTable returns the API surface with traffic weights summing to 100.
// The token endpoint has weight 0: only OAuth traffic uses it.
func endpointTable() [numEndpoints]endpoint {
	return [numEndpoints]endpoint{
		epQuotes:      {method: http.MethodGet, kind: pathQuotes, weight: 27, outMin: 240, outMax: 2600, latency: 7},
		epBars:        {method: http.MethodGet, kind: pathBars, weight: 6, outMin: 2000, outMax: 48000, latency: 24},
		epOrdersList:  {method: http.MethodGet, path: "/v1/orders", weight: 6, outMin: 400, outMax: 24000, latency: 16},
		epOrdersOpen:  {method: http.MethodGet, path: "/v1/orders?status=open&limit=100", weight: 4, outMin: 120, outMax: 9000, latency: 14},
		epOrderCreate: {method: http.MethodPost, path: "/v1/orders", weight: 11, inMin: 140, inMax: 420, outMin: 280, outMax: 520, latency: 32},
		epOrderGet:    {method: http.MethodGet, kind: pathOrder, weight: 10, outMin: 300, outMax: 700, latency: 9, hasID: true},
		epOrderCancel: {method: http.MethodDelete, kind: pathOrder, weight: 4, outMin: 180, outMax: 400, latency: 21, hasID: true},
		epPositions:   {method: http.MethodGet, path: "/v1/positions", weight: 13, outMin: 90, outMax: 12000, latency: 11},
		epBalance:     {method: http.MethodGet, kind: pathBalance, weight: 10, outMin: 220, outMax: 600, latency: 9, hasID: true},
		epAccount:     {method: http.MethodGet, kind: pathAccount, weight: 3, outMin: 400, outMax: 1100, latency: 7, hasID: true},
		epFills:       {method: http.MethodGet, path: "/v1/fills?limit=200", weight: 4, outMin: 150, outMax: 30000, latency: 28},
		epInstrument:  {method: http.MethodGet, kind: pathInstrument, weight: 2, outMin: 500, outMax: 1500, latency: 5, hasID: true},
		epToken:       {method: http.MethodPost, path: "/v1/oauth/token", inMin: 140, inMax: 320, outMin: 380, outMax: 900, latency: 26},
	}
}

// pathPools holds precomputed query paths so requests build no strings.
type pathPools struct {
	quotes, bars, instruments []string
}

func buildPathPools(r *rng) pathPools {
	symbols := []string{
		"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD", "NFLX", "JPM", "BAC", "XOM",
		"SPY", "QQQ", "IWM", "TLT", "GLD", "EURUSD", "GBPUSD", "USDJPY", "BTCUSD", "ETHUSD", "V", "KO",
	}
	var p pathPools
	for range 64 {
		n := 1 + r.intn(6)
		picked := make([]string, 0, n)
		for _, j := range r.r.Perm(len(symbols))[:n] {
			picked = append(picked, symbols[j])
		}
		p.quotes = append(p.quotes, "/v1/marketdata/quotes?symbols="+strings.Join(picked, ","))
	}
	for _, s := range symbols {
		p.bars = append(p.bars, "/v1/marketdata/bars?symbol="+s+"&interval="+pick(r, []string{"1m", "5m", "1h", "1d"}))
		p.instruments = append(p.instruments, "/v1/instruments/"+s)
	}
	return p
}

// pickEndpoint draws an endpoint index by traffic weight.
func (g *Generator) pickEndpoint(r *rng) int {
	x := r.intn(g.epTotal)
	for i := range g.endpoints {
		x -= g.endpoints[i].weight
		if x < 0 {
			return i
		}
	}
	return epQuotes
}

// shape fills method, path, sizes and latency of a successful call to
// endpoint ep for account a (which may be nil for account-less paths).
func (g *Generator) shape(ev *Event, r *rng, ep int, a *account) {
	e := &g.endpoints[ep]
	ev.Method = e.method
	ev.Status = http.StatusOK
	switch e.kind {
	case pathFixed:
		ev.Path = e.path
	case pathQuotes:
		ev.Path = pick(r, g.paths.quotes)
	case pathBars:
		ev.Path = pick(r, g.paths.bars)
	case pathInstrument:
		ev.Path = pick(r, g.paths.instruments)
	case pathOrder, pathBalance, pathAccount:
		if a == nil {
			ev.Path = "/v1/positions"
			break
		}
		switch e.kind {
		case pathOrder:
			ev.Path = pick(r, a.orderPaths)
		case pathBalance:
			ev.Path = a.balancePath
		default:
			ev.Path = a.accountPath
		}
	}
	if e.method == http.MethodPost || e.method == http.MethodPut {
		ev.BytesIn = r.between(e.inMin, e.inMax)
		if e.method == http.MethodPost && e.path == "/v1/orders" {
			ev.Status = http.StatusCreated
		}
	}
	ev.BytesOut = r.between(e.outMin, e.outMax)
	ev.LatencyMS = latency(r, e.latency, 0.55)
}

// fail turns ev into an error response with status and code, adjusting
// response size and latency: auth and rate-limit rejections are cheap,
// internal errors slow.
func (g *Generator) fail(ev *Event, r *rng, status int, code string) {
	ev.Status = status
	ev.ErrorCode = code
	ev.BytesOut = r.between(70, 160)
	switch status {
	case http.StatusUnauthorized, http.StatusTooManyRequests:
		ev.LatencyMS = latency(r, 1.4, 0.4)
	case http.StatusInternalServerError:
		ev.LatencyMS = latency(r, 90, 0.9)
	case http.StatusBadRequest:
		ev.LatencyMS = latency(r, 4, 0.5)
	}
}

// latency draws a log-normal latency with the given median and shape,
// rounded to 0.01 ms and at least 0.1 ms.
func latency(r *rng, median, sigma float64) float64 {
	v := median * math.Exp(sigma*r.norm())
	return max(0.1, math.Round(v*100)/100)
}
