package gen

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Roles reserve keys for scenarios and registry checks. Keys beyond the
// roles are ordinary. The registry is the same whichever scenarios are
// enabled, so a disabled scenario's key simply stays quiet or normal.
const (
	roleExpired      = iota // status expired; traffic only in expired_key_in_use
	roleRevoked             // status revoked; no traffic
	roleDormant             // unused ≥45 days; traffic only in dormant_key_returns
	roleStale45             // unused ≥45 days; no traffic
	roleStale90             // unused ≥90 days, rotation overdue; no traffic
	roleBrowser             // no allowlist; browser_exposed_key
	roleSigBurst            // no allowlist; invalid_signature_burst
	roleClockSkew           // allowlist, always signs; clock_skew
	roleOutsideAllow        // allowlist; outside_allowlist
	roleSpike               // allowlist, quiet; usage_spike
	roleErrJump             // allowlist; error_rate_jump
	roleOpen                // ordinary live key without allowlist
	numRoles
)

const day = 24 * time.Hour

// keyInfo is the generator's working copy of a key, with derived values the
// hot path reads.
type keyInfo struct {
	secret, id, env, accountID, ua string
	acct                           *account
	homeIPs                        []string
	allow                          []netip.Prefix
	signed                         float64
	rate                           float64
	profile                        [24]float64
	// Normal traffic of the key is replaced by a scenario in [supFrom, supTo).
	supFrom, supTo int64
	// From moveAt on (noise: the client moved hosts) the key's traffic
	// comes from movedIPs instead of homeIPs.
	moveAt   int64
	movedIPs []string
	ordinary bool
}

// Traffic shares of OAuth apps and unauthenticated clients in normal traffic.
const (
	oauthShare = 0.06
	noneShare  = 0.003
)

func sdkUserAgents() []string {
	return []string{
		"brokeret-python/2.3.1", "brokeret-python/2.3.1", "brokeret-python/2.2.0", "brokeret-go/1.4.0",
		"brokeret-go/1.4.0", "brokeret-go/1.3.2", "brokeret-node/3.1.2", "brokeret-java/1.9.0",
		"curl/8.5.0", "python-requests/2.31.0",
	}
}

// keyEntry is a key under construction with its role (-1 for ordinary keys).
type keyEntry struct {
	key  Key
	info keyInfo
	role int
}

// buildRegistry creates accounts, OAuth clients and keys, assigns roles and
// normal rates, and sorts keys by id (which is creation order).
func (g *Generator) buildRegistry(r *rng) {
	g.accounts = buildAccounts(r, g.cfg.Accounts, g.cfg.Start)
	g.clients = buildOAuthClients(r, g.accounts)
	g.paths = buildPathPools(r)

	uas := sdkUserAgents()
	acctPerm := r.r.Perm(len(g.accounts))
	entries := make([]keyEntry, g.cfg.Keys)
	for i := range entries {
		ai := r.intn(len(g.accounts))
		if i < len(g.accounts) {
			ai = acctPerm[i] // every account gets a key first
		}
		entries[i] = g.newKey(r, i, &g.accounts[ai], uas)
	}
	eps := g.cfg.EventsPerSecond
	if g.cfg.Events > 0 {
		eps = 1 // New rescales once the window's total intensity is known
	}
	apiRate := eps * (1 - oauthShare - noneShare)
	active := assignRates(r, entries, apiRate)
	calibrateSigning(r, entries, active, apiRate)
	g.oauthRate = eps * oauthShare
	g.noneRate = eps * noneShare
	g.oauthProfile = diurnalProfile(14.5, 5, 0.2)

	slices.SortFunc(entries, func(a, b keyEntry) int { return strings.Compare(a.key.ID, b.key.ID) })
	g.keys = make([]Key, len(entries))
	g.info = make([]keyInfo, len(entries))
	for i, e := range entries {
		g.keys[i], g.info[i] = e.key, e.info
		if e.role >= 0 {
			g.role[e.role] = i
		}
	}
	for i := range g.accounts {
		a := &g.accounts[i]
		g.known = append(g.known, a.net4, netip.PrefixFrom(a.office, 32))
		if a.net6.IsValid() {
			g.known = append(g.known, a.net6)
		}
	}
}

// newKey creates the i-th key, of account a. The first numRoles keys take
// the roles in order; a fifth of the rest are sandbox keys.
func (g *Generator) newKey(r *rng, i int, a *account, uas []string) keyEntry {
	role := -1
	if i < numRoles {
		role = i
	}
	env := EnvLive
	if role < 0 && (i-numRoles)%5 == 1 {
		env = EnvTest
	}
	k := Key{Env: env, AccountID: a.id, Status: KeyActive, UserAgent: pick(r, uas), Owner: a.owner}
	if env == EnvTest {
		k.Owner += "-sandbox"
	} else if r.chance(0.6) {
		k.Owner += "-" + pick(r, []string{"bot", "ingest", "dashboard", "backtest", "cron", "router", "hedger"})
	}
	k.Secret = newSecret(r, env)
	g.keyDates(r, &k, role)
	k.ID = "key_" + ulid(r, k.CreatedAt)
	k.SignedShare = pick(r, []float64{0, 0, 0, 0.3, 0.6, 0.9, 1, 1})
	if role == roleClockSkew || role == roleSigBurst {
		k.SignedShare = 1
	}
	v6 := i == numRoles // make sure some normal traffic is IPv6
	if v6 && !a.net6.IsValid() {
		a.net6 = serverBlocks().v6Net(r)
	}
	open := role < 0 && (i-numRoles)%15 == 7 || env == EnvTest && (i-numRoles)%10 == 1
	allow := keyNetworks(r, &k, a, role, open, v6)
	k.HourlyProfile = randomProfile(r)
	return keyEntry{key: k, role: role, info: keyInfo{
		secret: k.Secret, id: k.ID, env: k.Env, accountID: a.id, ua: k.UserAgent, acct: a,
		homeIPs: k.HomeIPs, allow: allow, signed: k.SignedShare, profile: k.HourlyProfile,
		supFrom: math.MaxInt64, supTo: math.MaxInt64, moveAt: math.MaxInt64, ordinary: role < 0 || role == roleOpen,
	}}
}
