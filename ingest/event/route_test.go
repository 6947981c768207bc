package event

import (
	"strings"
	"testing"
)

func TestRoute(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/orders": "/v1/orders",
		"/v1/orders/ord_01M7VYDBW8Y83BK8P341NKTJ19":        "/v1/orders/{id}",
		"/v1/accounts/acc_kWLeod7wycAA/balance":            "/v1/accounts/{id}/balance",
		"/v1/orders/123/fills/7":                           "/v1/orders/{id}/fills/{id}",
		"/v1/objects/550e8400-e29b-41d4-a716-446655440000": "/v1/objects/{id}",
		"/v1/marketdata/quotes":                            "/v1/marketdata/quotes",
		"/v1/oauth/token":                                  "/v1/oauth/token",
		"/v1/x_y":                                          "/v1/x_y",
		"/v2/deep_link_abc":                                "/v2/deep_link_abc",
		"/v1/keys/bk_live_Q7w8…G1h2/usage":                 "/v1/keys/{id}/usage",
		"/v1/keys/bk_test_…ab":                             "/v1/keys/{id}",
	} {
		if got := Route(in); got != want {
			t.Errorf("Route(%q) = %q, want %q", in, got, want)
		}
	}
}

// routeBySplit is Route written the plain way (split, fold, join): Route
// must agree with it on every path.
func routeBySplit(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if isID(s) {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

func TestRouteAgreesWithSplit(t *testing.T) {
	for _, p := range []string{"", "/", "//", "123", "/123", "/123/", "123/", "//123//a_bcdefgh//", "/v1/orders/123/",
		"/v1/orders/ord_01M7VYDBW8Y83BK8P341NKTJ19/fills", "a/b/c", "/v1/x_y/123", "/550e8400-e29b-41d4-a716-446655440000",
		"/v1/keys/bk_live_Q7w8…G1h2", "/bk_test_", "/v1//2"} {
		if got, want := Route(p), routeBySplit(p); got != want {
			t.Errorf("Route(%q) = %q, want %q", p, got, want)
		}
	}
}

func FuzzRoute(f *testing.F) {
	f.Add("/v1/orders/123/fills/7")
	f.Add("//a_bcdefg/")
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := Route(p), routeBySplit(p); got != want {
			t.Errorf("Route(%q) = %q, want %q", p, got, want)
		}
	})
}
