package authtest

import (
	"net/http"
	"strconv"
	"testing"
)

// TestLoginRateLimit fails logins from one address until the limit is
// reached: then even the right password is answered 429 TOOMANYREQUESTS
// with Retry-After, so that guessing cannot go on, and so that a right
// guess cannot be told apart. Where passwords are checked depends on the
// mode: on every request with Basic auth, at the token server with tokens.
func TestLoginRateLimit(t *testing.T) {
	for _, m := range []mode{basicMode, tokenMode} {
		t.Run(string(m), func(t *testing.T) {
			srv, _ := start(t, m, "LADING_AUTH_RATELIMIT_BURST=3", "LADING_AUTH_RATELIMIT_PER=1m")
			url := srv.URL + "/v2/team/app/tags/list"
			if m == tokenMode {
				url = srv.URL + "/auth/token?service=lading&scope=repository:team/app:pull"
			}
			for i := range 3 {
				resp := do(t, http.MethodGet, url, basicHeader("alice", "guess-"+strconv.Itoa(i)))
				wantError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
			}
			for _, password := range []string{"guess-3", users["alice"]} {
				resp := do(t, http.MethodGet, url, basicHeader("alice", password))
				wantError(t, resp, http.StatusTooManyRequests, "TOOMANYREQUESTS")
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
					t.Errorf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
				}
			}
		})
	}
}
