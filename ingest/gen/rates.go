package gen

import "math"

// assignRates gives the keys that send normal traffic Zipf-like rates
// summing to apiRate and returns their indexes. A few roles are pinned to a
// rank band: the spike key among the quiet, the keys whose traffic a
// scenario replaces in the middle. Test keys get a third of the weight.
func assignRates(r *rng, entries []keyEntry, apiRate float64) []int {
	var active []int
	for i, e := range entries {
		switch e.role {
		case roleExpired, roleRevoked, roleDormant, roleStale45, roleStale90:
		default:
			active = append(active, i)
		}
	}
	m := len(active)
	rank := make(map[int]int, m)
	pinned := map[int]bool{}
	for j, p := range r.r.Perm(m) {
		rank[active[j]] = p + 1
	}
	pin := func(idx, lo, hi int) {
		lo, hi = max(1, lo), min(m, max(lo, hi))
		for range 100 {
			t := r.between(lo, hi)
			for _, other := range active {
				if rank[other] == t && !pinned[other] {
					rank[idx], rank[other] = t, rank[idx]
					pinned[idx] = true
					return
				}
			}
		}
	}
	// Entry index equals role for role keys.
	pin(roleSpike, m*6/10, m)
	pin(roleErrJump, m/5, m/2)
	pin(roleClockSkew, m/5, m/2)
	pin(roleBrowser, m/4, m*3/4)
	sum := 0.0
	weights := make([]float64, len(entries))
	for _, i := range active {
		w := 1 / math.Pow(float64(rank[i]), 1.1)
		if entries[i].key.Env == EnvTest {
			w *= 0.3
		}
		weights[i] = w
		sum += w
	}
	for _, i := range active {
		entries[i].key.BaseRate = weights[i] / sum * apiRate
		entries[i].info.rate = entries[i].key.BaseRate
	}
	return active
}

// calibrateSigning scales the signing shares of the keys free to vary so
// that 33–47% of key traffic is signed whichever keys the rate draw made
// busy; if every signing key is already at 1, the busiest non-signing key
// starts signing half its requests.
func calibrateSigning(r *rng, entries []keyEntry, active []int, apiRate float64) {
	target := 0.33 + 0.14*r.float()
	for range 20 {
		signedRate := 0.0
		for _, i := range active {
			signedRate += entries[i].key.BaseRate * entries[i].key.SignedShare
		}
		f := target * apiRate / max(signedRate, 1e-12)
		if math.Abs(f-1) < 0.02 {
			break
		}
		changed := false
		for _, i := range active {
			k := &entries[i].key
			if i != roleClockSkew && i != roleSigBurst && k.SignedShare > 0 {
				s := math.Min(1, math.Round(k.SignedShare*f*100)/100)
				changed = changed || s != k.SignedShare
				k.SignedShare = s
			}
		}
		if !changed && f > 1 {
			busiest := -1
			for _, i := range active {
				if entries[i].key.SignedShare == 0 && (busiest < 0 || entries[i].key.BaseRate > entries[busiest].key.BaseRate) {
					busiest = i
				}
			}
			if busiest < 0 {
				break
			}
			entries[busiest].key.SignedShare = 0.5
		}
	}
	for i := range entries {
		entries[i].info.signed = entries[i].key.SignedShare
	}
}
