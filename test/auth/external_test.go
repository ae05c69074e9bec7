package authtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/lading-registry/lading/internal/testserver"
)

// TestExternalIssuer runs a registry that issues no tokens itself but
// trusts another lading's token server through its JWK Set, as it would a
// separate auth service. Clients are sent to the issuer by the challenge.
//
// The client here is raw HTTP: go-containerregistry refuses a realm on a
// loopback address other than the registry's own host:port.
func TestExternalIssuer(t *testing.T) {
	issuer, _ := start(t, tokenMode)
	registry := testserver.Start(t, testserver.Options{Env: []string{
		"LADING_AUTH_TOKEN_REALM=" + issuer.URL + "/auth/token",
		"LADING_AUTH_TOKEN_JWKS=" + issuer.URL + "/auth/jwks",
	}})
	uploads := registry.URL + "/v2/team/app/blobs/uploads/"

	// as sends the request as user, with a token for what the challenge
	// asks, fetched from the realm it names.
	as := func(user, method, rawURL string) *http.Response {
		t.Helper()
		resp := do(t, method, rawURL, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s %s without a token: %d, want 401", method, rawURL, resp.StatusCode)
		}
		params := challengeParams(resp.Header.Get("WWW-Authenticate"))
		if params["realm"] != issuer.URL+"/auth/token" {
			t.Fatalf("challenge %q does not send clients to the issuer", resp.Header.Get("WWW-Authenticate"))
		}
		base, _ := strings.CutSuffix(params["realm"], "/auth/token")
		return do(t, method, rawURL, "Bearer "+fetchToken(t, base, user, params["scope"]))
	}

	if resp := as("bob", http.MethodPost, uploads); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("bob starting an upload: %d, want 202", resp.StatusCode)
	}
	// Without a policy of its own the registry knows only what tokens
	// grant: the issuer never grants carol push here, so she is sent for a
	// token again rather than told 403.
	resp := as("carol", http.MethodPost, uploads)
	wantError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	if c := challengeParams(resp.Header.Get("WWW-Authenticate")); c["error"] != "insufficient_scope" {
		t.Errorf("challenge %q, want error=insufficient_scope", resp.Header.Get("WWW-Authenticate"))
	}

	// The keys come from the issuer's JWK Set: a token signed with any
	// other is refused.
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	forged, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": "lading", "aud": "lading", "sub": "root", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(),
		"access": []map[string]any{{"type": "repository", "name": "team/app", "actions": []string{"*"}}},
	}).SignedString(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	resp = do(t, http.MethodPost, uploads, "Bearer "+forged)
	wantError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
}
