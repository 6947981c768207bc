package gen

import (
	"net/netip"
	"slices"
)

// Address blocks that give generated IPs a plausible look: cloud and hosting
// providers for servers, VPS ranges for attackers, consumer ISPs for browsers.
// They are chosen by first octet (IPv4) or 32-bit prefix (IPv6).
type ipBlocks struct {
	v4 []byte
	v6 [][2]uint16
}

func serverBlocks() ipBlocks {
	return ipBlocks{
		v4: []byte{3, 13, 18, 34, 35, 44, 52, 54, 62, 81, 85, 141, 145, 151, 195, 212, 217},
		v6: [][2]uint16{{0x2a01, 0x04f8}, {0x2600, 0x1f18}, {0x2a05, 0xd018}, {0x2001, 0x41d0}},
	}
}

func attackerBlocks() ipBlocks {
	return ipBlocks{
		v4: []byte{5, 23, 31, 45, 46, 89, 91, 103, 104, 107, 159, 176, 178, 185, 193, 194},
		v6: [][2]uint16{{0x2a0e, 0x97c0}, {0x2602, 0xff16}},
	}
}

func residentialBlocks() ipBlocks {
	return ipBlocks{
		v4: []byte{24, 50, 67, 71, 73, 76, 79, 82, 86, 90, 92, 98, 109, 174, 188},
		v6: [][2]uint16{{0x2003, 0x00e8}, {0x2601, 0x0281}, {0x2a02, 0x0810}},
	}
}

// v4In returns a random IPv4 address from blocks with host octets that
// avoid network and broadcast-looking values.
func (b ipBlocks) v4In(r *rng) netip.Addr {
	return netip.AddrFrom4([4]byte{pick(r, b.v4), byte(r.intn(256)), byte(r.intn(256)), byte(r.between(1, 254))})
}

// v6Net returns a random /64 from blocks.
func (b ipBlocks) v6Net(r *rng) netip.Prefix {
	p := pick(r, b.v6)
	var a [16]byte
	a[0], a[1], a[2], a[3] = byte(p[0]>>8), byte(p[0]), byte(p[1]>>8), byte(p[1])
	for i := 4; i < 8; i++ {
		a[i] = byte(r.intn(256))
	}
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// hostIn returns a random host address inside p, avoiding the first and last
// address of small IPv4 networks.
func hostIn(r *rng, p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		hostBits := 32 - p.Bits()
		if hostBits == 0 {
			return a
		}
		n := uint32(1) << hostBits
		var off uint32
		if n <= 2 {
			off = uint32(r.intn(int(n)))
		} else {
			off = 1 + uint32(r.intn(int(n-2)))
		}
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v += off
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	b := a.As16()
	// Servers in a /64 tend to have small interface ids such as ::1a or ::2:5.
	if r.chance(0.5) {
		b[14], b[15] = byte(r.intn(4)), byte(r.between(1, 255))
	} else {
		for i := 8; i < 16; i++ {
			b[i] = byte(r.intn(256))
		}
	}
	return netip.AddrFrom16(b)
}

// foreignIP returns an address from blocks outside every account network,
// office and allowlist, so scenario traffic from it is unambiguously new.
func (g *Generator) foreignIP(r *rng, blocks ipBlocks, v6 bool) netip.Addr {
	for {
		var a netip.Addr
		if v6 {
			a = hostIn(r, blocks.v6Net(r))
		} else {
			a = blocks.v4In(r)
		}
		if !slices.ContainsFunc(g.known, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return a
		}
	}
}

// neighbours returns n distinct addresses in the /24 of a (a first).
func neighbours(r *rng, a netip.Addr, n int) []string {
	b := a.As4()
	seen := map[byte]bool{b[3]: true}
	out := []string{a.String()}
	for len(out) < n {
		c := byte(r.between(1, 254))
		if seen[c] {
			continue
		}
		seen[c] = true
		b[3] = c
		out = append(out, netip.AddrFrom4(b).String())
	}
	return out
}
