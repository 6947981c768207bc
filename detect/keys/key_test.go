package keys

import (
	"net/netip"
	"testing"
	"time"
)

func mustCIDRs(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := ParseCIDR(s)
		if err != nil {
			t.Fatalf("ParseCIDR(%q): %v", s, err)
		}
		out = append(out, p)
	}
	return normalizeCIDRs(out)
}

func TestParseCIDR(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{" 10.1.2.3/8 ", "10.0.0.0/8"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:DB8:0:0:1::/64", "2001:db8::/64"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"::/0", "::/0"},
		{"::ffff:0.0.0.0/64", ""},
		{"10.0.0.0/33", ""},
		{"fe80::1%eth0", ""},
		{"10.0.0", ""},
		{"", ""},
		{"bk_live_abcdefabcdefabcdef", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParseCIDR(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseCIDR(%q) = %v, want an error", tt.in, p)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Fatalf("ParseCIDR(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		name  string
		cidrs []string
		ip    string // "" is the zero Addr
		want  bool
	}{
		{"no allowlist allows anything", nil, "203.0.113.9", true},
		{"no allowlist allows an invalid address", nil, "", true},
		{"inside /24", []string{"198.51.100.0/24"}, "198.51.100.255", true},
		{"first address of /24", []string{"198.51.100.0/24"}, "198.51.100.0", true},
		{"just outside /24", []string{"198.51.100.0/24"}, "198.51.101.0", false},
		{"single address /32", []string{"192.0.2.7"}, "192.0.2.7", true},
		{"neighbour of /32", []string{"192.0.2.7"}, "192.0.2.8", false},
		{"second of several", []string{"10.0.0.0/8", "2001:db8::/32"}, "2001:db8:ffff::1", true},
		{"IPv4-mapped address matches IPv4 CIDR", []string{"10.0.0.0/8"}, "::ffff:10.9.8.7", true},
		{"IPv4 address does not match ::/0", []string{"::/0"}, "192.0.2.1", false},
		{"IPv6 address does not match 0.0.0.0/0", []string{"0.0.0.0/0"}, "2001:db8::1", false},
		{"0.0.0.0/0 allows any IPv4", []string{"0.0.0.0/0"}, "203.0.113.1", true},
		{"IPv6 /64 inside", []string{"2a01:4f8:10:20::/64"}, "2a01:4f8:10:20:ffff:ffff:ffff:ffff", true},
		{"IPv6 /64 outside", []string{"2a01:4f8:10:20::/64"}, "2a01:4f8:10:21::", false},
		{"IPv6 /128", []string{"2001:db8::1"}, "2001:db8::1", true},
		{"zoned address compared without zone", []string{"fe80::/10"}, "fe80::1%eth0", true},
		{"invalid address with allowlist", []string{"10.0.0.0/8"}, "", false},
		{"mapped CIDR given as IPv6", []string{"::ffff:10.0.0.0/104"}, "10.1.1.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := Key{AllowedCIDRs: mustCIDRs(t, tt.cidrs...)}
			var ip netip.Addr
			if tt.ip != "" {
				ip = netip.MustParseAddr(tt.ip)
			}
			if got := k.Allows(ip); got != tt.want {
				t.Fatalf("Allows(%s) with %v = %v, want %v", tt.ip, k.AllowedCIDRs, got, tt.want)
			}
		})
	}
}

func TestLastRotation(t *testing.T) {
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	later := created.Add(100 * 24 * time.Hour)
	earlier := created.Add(-time.Hour)
	tests := []struct {
		name    string
		rotated *time.Time
		want    time.Time
	}{
		{"never rotated", nil, created},
		{"rotated", &later, later},
		{"rotated before creation (bad data)", &earlier, created},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Key{CreatedAt: created, RotatedAt: tt.rotated}).LastRotation(); !got.Equal(tt.want) {
				t.Fatalf("LastRotation = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"2026-03-01", "2026-03-01T00:00:00Z"},
		{"2026-03-01T10:20:30Z", "2026-03-01T10:20:30Z"},
		{"2026-03-01T10:20:30.999+02:00", "2026-03-01T08:20:30Z"},
		{"2026-03-01 10:20:30", "2026-03-01T10:20:30Z"},
		{"2026-03-01T10:20:30", "2026-03-01T10:20:30Z"},
		{"1969-12-31", ""},
		{"2200-01-01", ""},
		{"yesterday", ""},
		{"01/03/2026", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTime(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("parseTime(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got.Format(time.RFC3339) != tt.want {
				t.Fatalf("parseTime(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}
