package gen

import (
	"fmt"
	"net/netip"
	"time"
)

// account is a customer account: the networks its keys run from and the
// resource paths its requests touch.
type account struct {
	id    string
	owner string
	// net4 is the IPv4 network of the account's servers; net6 an optional /64.
	net4, net6 netip.Prefix
	// office is a single address, e.g. a developer office or VPN exit.
	office      netip.Addr
	orderPaths  []string
	balancePath string
	accountPath string
}

// oauthClient is a third-party application acting for some accounts.
type oauthClient struct {
	id       string
	ua       string
	accounts []int
	ips      []string
	weight   float64
}

func accountOwners() []string {
	return []string{
		"quant-desk", "market-making", "retail-app", "treasury", "risk-engine", "backoffice",
		"algo-research", "reporting", "hedging-svc", "mobile-backend", "partner-integrations",
		"pricing", "execution", "compliance", "data-platform", "portfolio-mgmt", "fx-desk",
		"options-desk", "wealth-app", "tax-reporting",
	}
}

// buildAccounts creates n accounts with their networks and order ids.
func buildAccounts(r *rng, n int, start time.Time) []account {
	owners := accountOwners()
	perm := r.r.Perm(len(owners))
	srv, res := serverBlocks(), residentialBlocks()
	accts := make([]account, n)
	for i := range accts {
		a := &accts[i]
		a.id = "acc_" + randAlnum(r, 12)
		a.owner = owners[perm[i%len(owners)]]
		if i >= len(owners) {
			a.owner = fmt.Sprintf("%s-%d", a.owner, i/len(owners)+1)
		}
		bits := pick(r, []int{27, 28, 28, 29})
		a.net4 = netip.PrefixFrom(srv.v4In(r), bits).Masked()
		if r.chance(0.45) {
			a.net6 = srv.v6Net(r)
		}
		a.office = res.v4In(r)
		a.balancePath = "/v1/accounts/" + a.id + "/balance"
		a.accountPath = "/v1/accounts/" + a.id
		a.orderPaths = make([]string, 24)
		for j := range a.orderPaths {
			placed := start.Add(-time.Duration(r.intn(7*24*3600)) * time.Second)
			a.orderPaths[j] = "/v1/orders/ord_" + ulid(r, placed)
		}
	}
	return accts
}

// buildOAuthClients creates the third-party apps and the accounts they serve.
func buildOAuthClients(r *rng, accts []account) []oauthClient {
	names := []string{"TradeJournal", "TaxLens", "PortfolioSync", "ChartDesk", "AlgoHub", "RebalanceIQ"}
	libs := []string{"okhttp/4.12.0", "python-httpx/0.27.0", "axios/1.7.2", "Go-http-client/2.0"}
	srv := serverBlocks()
	n := r.between(4, len(names))
	clients := make([]oauthClient, n)
	for i := range clients {
		c := &clients[i]
		c.id = "oac_" + randAlnum(r, 24)
		c.ua = fmt.Sprintf("%s/%d.%d.%d (%s)", names[i], r.between(1, 5), r.intn(10), r.intn(20), pick(r, libs))
		for _, j := range r.r.Perm(len(accts))[:min(len(accts), r.between(1, 4))] {
			c.accounts = append(c.accounts, j)
		}
		base := srv.v4In(r).As4()
		for range r.between(1, 3) {
			base[3] = byte(r.between(1, 254))
			c.ips = append(c.ips, netip.AddrFrom4(base).String())
		}
		c.weight = 1 / float64(i+1)
	}
	return clients
}
