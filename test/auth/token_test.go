package authtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestTokens presents tokens minted here, with the server's own key and
// with others, and checks that only a valid one with the right scope gets
// through, and that the refusal tells the client what went wrong.
func TestTokens(t *testing.T) {
	srv, files := start(t, tokenMode)
	mustPush(t, srv.Addr, "team/app:1", randomImage(t), login("root"))
	const manifest = "/v2/team/app/manifests/1"
	realm := srv.URL + "/auth/token"

	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": "lading", "aud": "lading", "sub": "alice",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
			"jti":    rand.Text(),
			"access": []map[string]any{{"type": "repository", "name": "team/app", "actions": []string{"pull"}}},
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(key ed25519.PrivateKey, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	valid := sign(files.Signer, claims(nil))

	if resp := do(t, http.MethodGet, srv.URL+manifest, "Bearer "+valid); resp.StatusCode != http.StatusOK {
		t.Fatalf("a valid token minted with the server's key: %d, want 200", resp.StatusCode)
	}

	invalid := map[string]string{
		"expired": sign(files.Signer, claims(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-time.Hour).Unix(), now.Add(-time.Hour).Unix(), now.Add(-5*time.Minute).Unix()
		})),
		"not yet valid":  sign(files.Signer, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() })),
		"without expiry": sign(files.Signer, claims(func(c jwt.MapClaims) { delete(c, "exp") })),
		"wrongly signed": sign(otherKey, claims(nil)),
		"wrong audience": sign(files.Signer, claims(func(c jwt.MapClaims) { c["aud"] = "another-registry" })),
		"wrong issuer":   sign(files.Signer, claims(func(c jwt.MapClaims) { c["iss"] = "someone-else" })),
		"tampered":       tamper(t, valid),
		"unsigned (alg none)": func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(),
		"HMAC with the public key": func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString([]byte(files.Signer.Public().(ed25519.PublicKey)))
			return s
		}(),
		"refresh token": refreshToken(t, srv.URL, "alice"),
		"garbage":       "not.a.jwt",
	}
	for name, token := range invalid {
		t.Run(name, func(t *testing.T) {
			resp := do(t, http.MethodGet, srv.URL+manifest, "Bearer "+token)
			wantError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
			want := `Bearer realm="` + realm + `",service="lading",scope="repository:team/app:pull",error="invalid_token"`
			if got := resp.Header.Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate\n%s\nwant\n%s", got, want)
			}
		})
	}

	t.Run("wrong scope", func(t *testing.T) {
		for _, c := range []struct {
			name, sub, method, path string
			status                  int
			challenge               string
		}{
			// The token is fine, it just does not cover the request: the
			// client may fetch one that does.
			{"other repository", "alice", http.MethodGet, "/v2/team/other/tags/list", http.StatusUnauthorized, "repository:team/other:pull"},
			{"push with pull", "alice", http.MethodPost, "/v2/team/app/blobs/uploads/", http.StatusUnauthorized, "repository:team/app:pull,push"},
			{"delete with pull", "alice", http.MethodDelete, manifest, http.StatusUnauthorized, "repository:team/app:delete"},
			// bob may never delete: no token would help.
			{"delete denied by policy", "bob", http.MethodDelete, manifest, http.StatusForbidden, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				token := sign(files.Signer, claims(func(cl jwt.MapClaims) { cl["sub"] = c.sub }))
				resp := do(t, c.method, srv.URL+c.path, "Bearer "+token)
				if c.status == http.StatusForbidden {
					wantError(t, resp, http.StatusForbidden, "DENIED")
					return
				}
				wantError(t, resp, c.status, "UNAUTHORIZED")
				want := `Bearer realm="` + realm + `",service="lading",scope="` + c.challenge + `",error="insufficient_scope"`
				if got := resp.Header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate\n%s\nwant\n%s", got, want)
				}
			})
		}
	})
}

// tamper widens a token's grants without re-signing it.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	widened := strings.Replace(string(payload), `"actions":["pull"]`, `"actions":["*"]`, 1)
	if widened == string(payload) {
		t.Fatalf("nothing to tamper with in %s", payload)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(widened))
	return strings.Join(parts, ".")
}
