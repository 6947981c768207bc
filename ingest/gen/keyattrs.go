package gen

import (
	"net/netip"
	"slices"
	"time"
)

// keyDates sets creation, rotation, expiry, last use and status by role.
func (g *Generator) keyDates(r *rng, k *Key, role int) {
	start := g.cfg.Start
	ago := func(loDays, hiDays int) time.Time {
		return start.Add(-time.Duration(r.int63n(int64(hiDays-loDays)*int64(day))) - time.Duration(loDays)*day).Truncate(time.Second)
	}
	k.CreatedAt = ago(20, 600)
	k.LastUsedAt = start.Add(-time.Duration(r.between(1, 900)) * time.Second)
	age := start.Sub(k.CreatedAt)
	switch u := r.float(); {
	case u < 0.4 && age > 3*day:
		k.RotatedAt = ago(1, min(60, int(age/day)-1))
	case u < 0.7 && age > 100*day:
		k.RotatedAt = ago(91, int(age/day)-1)
	}
	if role < 0 && r.chance(0.2) {
		k.ExpiresAt = start.Add(time.Duration(r.between(30, 400)) * day).Truncate(time.Second)
	}
	switch role {
	case roleExpired:
		k.Status = KeyExpired
		k.ExpiresAt = ago(3, 20)
		k.CreatedAt = k.ExpiresAt.Add(-365 * day)
		k.RotatedAt = time.Time{}
		k.LastUsedAt = k.ExpiresAt.Add(-time.Duration(r.between(60, 36*3600)) * time.Second)
	case roleRevoked:
		k.Status = KeyRevoked
		k.LastUsedAt = ago(10, 40)
	case roleDormant:
		k.LastUsedAt = ago(50, 80)
	case roleStale45:
		k.LastUsedAt = ago(46, 80)
	case roleStale90:
		k.LastUsedAt = ago(95, 200)
		k.CreatedAt = k.LastUsedAt.Add(-time.Duration(r.between(60, 300)) * day)
		k.RotatedAt = time.Time{}
	}
	if !k.CreatedAt.Before(k.LastUsedAt) {
		k.CreatedAt = k.LastUsedAt.Add(-time.Duration(r.between(5, 200)) * day)
	}
	if k.RotatedAt.After(k.LastUsedAt) || !k.RotatedAt.After(k.CreatedAt) {
		k.RotatedAt = time.Time{}
	}
}

// keyNetworks sets the key's allowlist and home IPs and returns the parsed
// allowlist. Role keys that scenarios use from foreign addresses have none,
// nor have keys the caller marks open. With v6 set, a live key gets an IPv6
// home address.
func keyNetworks(r *rng, k *Key, a *account, role int, open, v6 bool) []netip.Prefix {
	switch role {
	case roleDormant, roleBrowser, roleSigBurst, roleOpen:
		open = true
	}
	var nets []netip.Prefix
	if k.Env == EnvTest {
		// Sandbox keys run from developer machines in the office, sometimes CI.
		nets = append(nets, netip.PrefixFrom(a.office, 32))
		if r.chance(0.5) {
			nets = append(nets, a.net4)
		}
	} else {
		nets = append(nets, a.net4)
		if a.net6.IsValid() && (v6 || r.chance(0.6)) {
			nets = append(nets, a.net6)
		}
		if r.chance(0.25) {
			nets = append(nets, netip.PrefixFrom(a.office, 32))
		}
	}
	k.HomeNetwork = nets[0].String()
	for range r.between(1, 3) {
		k.HomeIPs = append(k.HomeIPs, hostIn(r, nets[0]).String())
	}
	for _, p := range nets[1:] {
		if r.chance(0.7) || (v6 && p.Addr().Is6()) {
			k.HomeIPs = append(k.HomeIPs, hostIn(r, p).String())
		}
	}
	slices.Sort(k.HomeIPs)
	k.HomeIPs = slices.Compact(k.HomeIPs)
	if open {
		return nil
	}
	for _, p := range nets {
		k.AllowedCIDRs = append(k.AllowedCIDRs, p.String())
	}
	return nets
}
