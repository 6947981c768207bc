package gen

import "time"

const (
	alnumChars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	crockford    = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	hexDigits    = "0123456789abcdef"
	secretLength = 32
)

// randAlnum returns n random characters from [A-Za-z0-9].
func randAlnum(r *rng, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnumChars[r.intn(len(alnumChars))]
	}
	return string(b)
}

// newSecret returns an API key secret for env ("live" or "test").
func newSecret(r *rng, env string) string {
	return "bk_" + env + "_" + randAlnum(r, secretLength)
}

// ulid returns a ULID for t: 10 characters of millisecond time followed by
// 16 random ones, so ids sort by creation time.
func ulid(r *rng, t time.Time) string {
	var b [26]byte
	ms := uint64(t.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	for i := 10; i < 26; i++ {
		b[i] = crockford[r.intn(32)]
	}
	return string(b[:])
}

// requestID returns "req_" and 20 hex digits derived from a run counter. The
// first 16 digits are a bijection of the counter, so ids never repeat within
// a run; salt makes them differ between seeds.
func requestID(counter, salt uint64) string {
	var b [24]byte
	copy(b[:], "req_")
	x := mix64(counter ^ salt)
	for i := 19; i >= 4; i-- {
		b[i] = hexDigits[x&15]
		x >>= 4
	}
	y := mix64(counter + salt*3 + 1)
	for i := 23; i >= 20; i-- {
		b[i] = hexDigits[y&15]
		y >>= 4
	}
	return string(b[:])
}
