package authtest

import (
	"net/http"
	"regexp"
	"testing"
)

// testChallenges checks the raw answers clients decide on: which challenge a
// 401 carries (the scope a token needs for the route, in token mode), and
// that 401 and 403 come with an OCI error body. team/app:1 exists.
func testChallenges(t *testing.T, m mode, baseURL string) {
	const manifest = "/v2/team/app/manifests/1"
	realm := baseURL + "/auth/token"
	challenge := func(scope, errCode string) string {
		if m == basicMode {
			return `Basic realm="lading"`
		}
		c := `Bearer realm="` + realm + `",service="lading"`
		if scope != "" {
			c += `,scope="` + scope + `"`
		}
		if errCode != "" {
			c += `,error="` + errCode + `"`
		}
		return c
	}
	wantChallenge := func(t *testing.T, resp *http.Response, want string) {
		t.Helper()
		wantError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
		if got := resp.Header.Get("WWW-Authenticate"); got != want {
			t.Errorf("%s %s: WWW-Authenticate\n%s\nwant\n%s", resp.Request.Method, resp.Request.URL.Path, got, want)
		}
	}

	t.Run("without credentials", func(t *testing.T) {
		for _, c := range []struct{ method, path, scope string }{
			{http.MethodGet, "/v2/", ""},
			{http.MethodGet, manifest, "repository:team/app:pull"},
			{http.MethodGet, "/v2/team/app/tags/list", "repository:team/app:pull"},
			{http.MethodPost, "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"},
			{http.MethodPut, manifest, "repository:team/app:pull,push"},
			{http.MethodDelete, manifest, "repository:team/app:delete"},
			{http.MethodPost, "/v2/public/base/blobs/uploads/", "repository:public/base:pull,push"},
		} {
			wantChallenge(t, do(t, c.method, baseURL+c.path, ""), challenge(c.scope, ""))
		}
		if m == tokenMode {
			// Anonymous callers may list what they may pull, but a token
			// is how they say so.
			wantChallenge(t, do(t, http.MethodGet, baseURL+"/v2/_catalog", ""), challenge("registry:catalog:*", ""))
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		resp := do(t, http.MethodGet, baseURL+manifest, basicHeader("alice", "wrong"))
		if m == basicMode {
			wantChallenge(t, resp, challenge("", ""))
			return
		}
		// A token-mode registry takes no passwords: the client is sent to
		// the token server, which refuses the wrong one itself.
		wantChallenge(t, resp, challenge("repository:team/app:pull", ""))
		resp = do(t, http.MethodGet, realm+"?service=lading&scope=repository:team/app:pull", basicHeader("alice", "wrong"))
		wantError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
		if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="lading"` {
			t.Errorf("token server's challenge %q, want Basic", got)
		}
	})
	t.Run("denied", func(t *testing.T) {
		resp := do(t, http.MethodDelete, baseURL+manifest,
			credentials(t, m, baseURL, "bob", "repository:team/app:delete"))
		wantError(t, resp, http.StatusForbidden, "DENIED")
		if c := resp.Header.Get("WWW-Authenticate"); c != "" {
			t.Errorf("403 with a challenge %q: credentials would not help", c)
		}
		resp = do(t, http.MethodGet, baseURL+manifest, credentials(t, m, baseURL, "eve", "repository:team/app:pull"))
		wantError(t, resp, http.StatusForbidden, "DENIED")
	})
	if m == tokenMode {
		t.Run("insufficient scope", func(t *testing.T) {
			pullOnly := credentials(t, m, baseURL, "alice", "repository:team/app:pull")
			if resp := do(t, http.MethodGet, baseURL+manifest, pullOnly); resp.StatusCode != http.StatusOK {
				t.Fatalf("pull with a pull token: %d", resp.StatusCode)
			}
			// alice may push, her token just did not ask: 401 sends her
			// back for a better one rather than 403.
			resp := do(t, http.MethodPost, baseURL+"/v2/team/app/blobs/uploads/", pullOnly)
			wantChallenge(t, resp, challenge("repository:team/app:pull,push", "insufficient_scope"))
			resp = do(t, http.MethodGet, baseURL+"/v2/team/other/tags/list", pullOnly)
			wantChallenge(t, resp, challenge("repository:team/other:pull", "insufficient_scope"))
		})
	}
	t.Run("allowed", func(t *testing.T) {
		if m == basicMode {
			if resp := do(t, http.MethodGet, baseURL+"/v2/public/base/manifests/1", ""); resp.StatusCode != http.StatusOK {
				t.Errorf("anonymous pull of a public manifest: %d, want 200", resp.StatusCode)
			}
		}
		if resp := do(t, http.MethodGet, baseURL+"/v2/", credentials(t, m, baseURL, "eve")); resp.StatusCode != http.StatusOK {
			t.Errorf("/v2/ with credentials: %d, want 200", resp.StatusCode)
		}
	})
}

var challengeParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// challengeParams reads the parameters of a WWW-Authenticate challenge.
func challengeParams(c string) map[string]string {
	out := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(c, -1) {
		out[m[1]] = m[2]
	}
	return out
}
