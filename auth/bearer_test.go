package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// issuerKey is a token issuer's private key with the algorithm it signs with.
type issuerKey struct {
	method  jwt.SigningMethod
	private crypto.Signer
}

func newIssuerKey(t testing.TB, alg string) issuerKey {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return issuerKey{jwt.GetSigningMethod(alg), k}
}

func (k issuerKey) sign(t testing.TB, claims tokenClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k.private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// certPEM is k's public key in a self-signed certificate, as issuers of
// the Docker token era hand out.
func (k issuerKey) certPEM(t testing.TB) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "token issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.private.Public(), k.private)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

const (
	testService = "registry.test"
	testIssuer  = "issuer.test"
	testRealm   = "https://auth.test/token"
)

// validClaims are those of a token bob might hold: pull and push on team/app.
func validClaims(now time.Time) tokenClaims {
	return tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Subject:   "bob",
			Audience:  jwt.ClaimStrings{testService},
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		Access: []Access{Repository("team/app", ActionPull, ActionPush)},
	}
}

func bearerRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://registry.test/v2/", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func TestBearerAcceptsAlgorithmsFromCertBundle(t *testing.T) {
	var bundle []byte
	keys := map[string]issuerKey{}
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		keys[alg] = newIssuerKey(t, alg)
		bundle = append(bundle, keys[alg].certPEM(t)...)
	}
	path := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(path, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := LoadCertBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: set}
	need := []Access{Repository("team/app", ActionPush)}
	for alg, k := range keys {
		// Issuers name keys their own way; the kid need not match ours.
		for _, kid := range []string{"", "libtrust:ABCD:EFGH"} {
			id, err := b.Authorize(bearerRequest(k.sign(t, validClaims(time.Now()), kid)), need)
			if err != nil || id.Name != "bob" || id.Method != MethodBearer {
				t.Errorf("%s token (kid %q): %v, %+v", alg, kid, err, id)
			}
		}
	}
}

func TestBearerRejectsBadTokens(t *testing.T) {
	key := newIssuerKey(t, "ES256")
	other := newIssuerKey(t, "ES256")
	set, err := NewKeySet(key.private.Public())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: set, Leeway: 10 * time.Second}
	need := []Access{Repository("team/app", ActionPull)}
	with := func(change func(*tokenClaims)) string {
		c := validClaims(now)
		change(&c)
		return key.sign(t, c, "")
	}
	for _, tc := range []struct {
		name   string
		token  string
		reason error
	}{
		{"expired", with(func(c *tokenClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }), ErrTokenExpired},
		{"no expiry", with(func(c *tokenClaims) { c.ExpiresAt = nil }), ErrTokenMalformed},
		{"not yet valid", with(func(c *tokenClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute)) }), ErrTokenNotYetValid},
		{"wrongly signed", other.sign(t, validClaims(now), ""), ErrTokenSignature},
		{"wrong audience", with(func(c *tokenClaims) { c.Audience = jwt.ClaimStrings{"other.registry"} }), ErrTokenAudience},
		{"wrong issuer", with(func(c *tokenClaims) { c.Issuer = "evil.test" }), ErrTokenIssuer},
		{"refresh token", with(func(c *tokenClaims) { c.Use = "refresh" }), ErrTokenMalformed},
		{"garbage", "not.a.jwt", ErrTokenMalformed},
		{"unsigned", unsignedToken(t, validClaims(now)), ErrTokenSignature},
		{"hmac with the public key", hmacWithPublicKey(t, key, validClaims(now)), ErrTokenSignature},
	} {
		_, err := b.Authorize(bearerRequest(tc.token), need)
		if !errors.Is(err, tc.reason) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.reason)
			continue
		}
		status, challenge, _ := Challenge(err)
		want := `Bearer realm="https://auth.test/token",service="registry.test",scope="repository:team/app:pull",error="invalid_token"`
		if status != 401 || challenge != want {
			t.Errorf("%s: %d %s", tc.name, status, challenge)
		}
	}

	// Within the leeway, clocks may disagree.
	skewed := with(func(c *tokenClaims) {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(-5 * time.Second))
		c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Second))
	})
	if _, err := b.Authorize(bearerRequest(skewed), need); err != nil {
		t.Errorf("token within leeway: %v", err)
	}
}

func unsignedToken(t *testing.T, c tokenClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hmacWithPublicKey is the algorithm-confusion attack: an HS256 token keyed
// with the issuer's public key, which anyone has.
func hmacWithPublicKey(t *testing.T, k issuerKey, c tokenClaims) string {
	der, _ := x509.MarshalPKIXPublicKey(k.private.Public())
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(der)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBearerScope(t *testing.T) {
	key := newIssuerKey(t, "EdDSA")
	set, _ := NewKeySet(key.private.Public())
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: set}
	token := key.sign(t, validClaims(time.Now()), "")

	// No token: the challenge names what to ask for, without an error.
	need := []Access{Repository("team/app", ActionPull)}
	_, err := b.Authorize(bearerRequest(""), need)
	if _, c, _ := Challenge(err); !errors.Is(err, ErrNoCredentials) ||
		c != `Bearer realm="https://auth.test/token",service="registry.test",scope="repository:team/app:pull"` {
		t.Errorf("no token: %v, %s", err, c)
	}
	// Basic credentials sent to a token registry are no credentials.
	r := bearerRequest("")
	r.SetBasicAuth("bob", "pw")
	if _, err := b.Authorize(r, need); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("basic to bearer: %v", err)
	}

	for _, tc := range []struct {
		need []Access
		ok   bool
	}{
		{nil, true},
		{[]Access{Repository("team/app", ActionPull)}, true},
		{[]Access{Repository("team/app", ActionPull, ActionPush)}, true},
		{[]Access{Repository("team/app", ActionDelete)}, false},
		{[]Access{Repository("team/app2", ActionPull)}, false},
		{[]Access{Repository("team", ActionPull)}, false},
		{[]Access{Repository("team/app", ActionPush), Repository("team/lib", ActionPull)}, false},
		{[]Access{Catalog}, false},
	} {
		_, err := b.Authorize(bearerRequest(token), tc.need)
		if tc.ok {
			if err != nil {
				t.Errorf("need %v: %v", tc.need, err)
			}
			continue
		}
		status, challenge, _ := Challenge(err)
		want := `Bearer realm="https://auth.test/token",service="registry.test",scope="` + FormatScopes(tc.need) + `",error="insufficient_scope"`
		if !errors.Is(err, ErrInsufficientScope) || status != 401 || challenge != want {
			t.Errorf("need %v: %v %d %s", tc.need, err, status, challenge)
		}
	}

	// Where the policy is known, a user it refuses is told so plainly.
	b.Policy = mustPolicy(t, testPolicy)
	if _, err := b.Authorize(bearerRequest(token), []Access{Repository("team/app", ActionDelete)}); !errors.Is(err, ErrDenied) {
		t.Errorf("policy refuses delete: %v", err)
	}
	// ... while one it allows is sent back for a better token.
	if _, err := b.Authorize(bearerRequest(token), []Access{Repository("team/lib", ActionPull)}); !errors.Is(err, ErrInsufficientScope) {
		t.Errorf("policy allows pull: %v", err)
	}
}

// A known policy narrows what an issuer grants: an operator adds one to
// restrict a token server that grants too much, and a change to it binds
// tokens issued before.
func TestBearerPolicyNarrowsTokenGrants(t *testing.T) {
	key := newIssuerKey(t, "ES256")
	set, _ := NewKeySet(key.private.Public())
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: set, Policy: mustPolicy(t, testPolicy)}
	c := validClaims(time.Now())
	c.Subject = "mallory" // nothing in testPolicy
	c.Access = []Access{Repository("team/app", ActionPull, ActionPush, ActionDelete)}
	mallory := key.sign(t, c, "")
	for _, need := range [][]Access{
		{Repository("team/app", ActionPull)},
		{Repository("team/app", ActionPull, ActionPush)},
		{Repository("team/app", ActionDelete)},
	} {
		if _, err := b.Authorize(bearerRequest(mallory), need); !errors.Is(err, ErrDenied) {
			t.Errorf("the policy refuses mallory %v: got %v, want DENIED", need, err)
		}
	}
	id, _ := b.Verify(t.Context(), mallory)
	if b.Can(id, Repository("team/app", ActionPull)) {
		t.Error("a mount from a repository the policy refuses")
	}

	// bob may pull and push team/**, not delete: his token's delete grant
	// is narrowed away, the rest stands.
	c.Subject = "bob"
	bob := key.sign(t, c, "")
	if _, err := b.Authorize(bearerRequest(bob), []Access{Repository("team/app", ActionPull, ActionPush)}); err != nil {
		t.Errorf("bob's push: %v", err)
	}
	if _, err := b.Authorize(bearerRequest(bob), []Access{Repository("team/app", ActionDelete)}); !errors.Is(err, ErrDenied) {
		t.Errorf("bob's delete: got %v, want DENIED", err)
	}

	// An anonymous token the policy refuses is sent to log in.
	c.Subject = ""
	anon := key.sign(t, c, "")
	if _, err := b.Authorize(bearerRequest(anon), []Access{Repository("team/app", ActionPull)}); !errors.Is(err, ErrInsufficientScope) {
		t.Errorf("anonymous: got %v, want insufficient_scope", err)
	}
}

// A challenge asks for the extra access its context names (a mount's
// source) beside what the request needs, which alone decides.
func TestBearerChallengeScopeHint(t *testing.T) {
	key := newIssuerKey(t, "EdDSA")
	set, _ := NewKeySet(key.private.Public())
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: set}
	need := []Access{Repository("team/app", ActionPull, ActionPush)}
	hinted := func(token string) *http.Request {
		r := bearerRequest(token)
		return r.WithContext(WithChallengeScope(r.Context(), Repository("team/lib", ActionPull)))
	}
	_, err := b.Authorize(hinted(""), need)
	if _, c, _ := Challenge(err); !strings.Contains(c, `scope="repository:team/app:pull,push repository:team/lib:pull"`) {
		t.Errorf("no token: challenge %s", c)
	}
	c := validClaims(time.Now())
	c.Access = need
	if _, err := b.Authorize(hinted(key.sign(t, c, "")), need); err != nil {
		t.Errorf("a token granting what the request needs, not the hint: %v", err)
	}
	c.Access = []Access{Repository("team/app", ActionPull)}
	_, err = b.Authorize(hinted(key.sign(t, c, "")), need)
	if _, ch, _ := Challenge(err); !errors.Is(err, ErrInsufficientScope) || !strings.Contains(ch, "repository:team/lib:pull") {
		t.Errorf("insufficient scope: %v, challenge %s", err, ch)
	}
}

// A policy caps an external issuer: a mount from a repository the policy
// opens to everyone still needs the token's grant, or a user the issuer
// keeps to one repository could copy any blob out of the others. With the
// built-in token server, whose tokens come from the policy, the policy
// alone decides.
func TestBearerMountNeedsTheIssuersGrant(t *testing.T) {
	key := newIssuerKey(t, "EdDSA")
	set, _ := NewKeySet(key.private.Public())
	open := mustPolicy(t, `
rules:
  - repositories: ["**"]
    users: ["*"]
    actions: [pull, push]
`)
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: set, Policy: open}
	c := validClaims(time.Now())
	c.Subject = "mallory"
	c.Access = []Access{Repository("mallory/x", ActionPull, ActionPush)}
	id, err := b.Authorize(bearerRequest(key.sign(t, c, "")), []Access{Repository("mallory/x", ActionPull, ActionPush)})
	if err != nil {
		t.Fatal(err)
	}
	if b.Can(id, Repository("team/secret", ActionPull)) {
		t.Error("an external token granting mallory/x alone may mount from team/secret")
	}
	if !b.Can(id, Repository("mallory/x", ActionPull)) {
		t.Error("a mount from a repository both the token and the policy grant is refused")
	}
	b.PolicyIssues = true
	if !b.Can(id, Repository("team/secret", ActionPull)) {
		t.Error("with the built-in token server, a mount the policy allows is refused")
	}
}

func TestBearerCanAndFilterWithoutPolicy(t *testing.T) {
	key := newIssuerKey(t, "EdDSA")
	set, _ := NewKeySet(key.private.Public())
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: set}
	c := validClaims(time.Now())
	c.Access = append(c.Access, Repository("team/lib", ActionPull))
	id, err := b.Authorize(bearerRequest(key.sign(t, c, "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Can(id, Repository("team/lib", ActionPull)) || b.Can(id, Repository("team/other", ActionPull)) {
		t.Error("mount check follows the token's grants")
	}
	repos := []string{"public/a", "team/app", "team/lib"}
	if got := b.Filter(id, repos); !slices.Equal(got, []string{"team/app", "team/lib"}) {
		t.Errorf("filter: %v", got)
	}
	if b.PullsNothing(id) {
		t.Error("a token granting pull on team/lib pulls nothing")
	}
	c.Access = []Access{Repository("team/drop", ActionPush)}
	pushOnly, _ := b.Authorize(bearerRequest(key.sign(t, c, "")), nil)
	if !b.PullsNothing(pushOnly) {
		t.Error("a token granting push alone pulls something")
	}
	c.Access = []Access{Catalog}
	id, _ = b.Authorize(bearerRequest(key.sign(t, c, "")), nil)
	if got := b.Filter(id, repos); !slices.Equal(got, repos) {
		t.Errorf("a catalog grant shows everything: %v", got)
	}
}

func TestBearerRealmFromRequest(t *testing.T) {
	b := &Bearer{Service: testService, Issuer: testIssuer, Keys: &KeySet{}}
	r := httptest.NewRequest(http.MethodGet, "http://reg.example:5000/v2/", nil)
	_, err := b.Authorize(r, nil)
	if _, c, _ := Challenge(err); !strings.HasPrefix(c, `Bearer realm="http://reg.example:5000/auth/token",`) {
		t.Errorf("plain: %s", c)
	}
	// The realm follows the request: a cache must not store the answer.
	h := http.Header{}
	if e, ok := AsError(err); !ok {
		t.Fatalf("not an auth error: %v", err)
	} else if e.SetHeaders(h); h.Get("Cache-Control") != "no-store" {
		t.Errorf("a challenge's Cache-Control: %q, want no-store", h.Get("Cache-Control"))
	}
	r.Header.Set("X-Forwarded-Proto", "https")
	_, err = b.Authorize(r, nil)
	if _, c, _ := Challenge(err); !strings.HasPrefix(c, `Bearer realm="https://reg.example:5000/auth/token",`) {
		t.Errorf("behind TLS proxy: %s", c)
	}
	// A proxy that passes its upstream's address as Host names the
	// client's in X-Forwarded-Host, or in Forwarded, which comes first.
	for _, tc := range []struct {
		header map[string]string
		want   string
	}{
		{map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}, "https://registry.example.com"},
		{map[string]string{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "registry.example.com:8443, 10.0.0.1"}, "https://registry.example.com:8443"},
		{map[string]string{"Forwarded": `for=192.0.2.60;proto=https;host="registry.example.com", for=10.0.0.2;proto=http;host=10.0.0.1`}, "https://registry.example.com"},
		{map[string]string{"Forwarded": "proto=https;host=a.example", "X-Forwarded-Host": "b.example", "X-Forwarded-Proto": "http"}, "https://a.example"},
		{map[string]string{"X-Forwarded-Host": `evil"; x="`}, "http://reg.example:5000"},
		{map[string]string{"X-Forwarded-Host": "a.example/path"}, "http://reg.example:5000"},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://reg.example:5000/v2/", nil)
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		_, err := b.Authorize(r, nil)
		if _, c, _ := Challenge(err); !strings.HasPrefix(c, `Bearer realm="`+tc.want+`/auth/token",`) {
			t.Errorf("%v: %s, want the realm at %s", tc.header, c, tc.want)
		}
	}
}

func TestIdentityLogsNoSecret(t *testing.T) {
	key := newIssuerKey(t, "EdDSA")
	set, _ := NewKeySet(key.private.Public())
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: set}
	token := key.sign(t, validClaims(time.Now()), "")
	id, err := b.Authorize(bearerRequest(token), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	logger := slog.New(slog.NewTextHandler(&out, nil))
	logger.Info("request", "identity", id)
	logger.Info("request", "identity", fmt.Sprint(id), "plus", fmt.Sprintf("%v %+v", id, id))
	if strings.Contains(out.String(), token) || strings.Contains(out.String(), "team/app") ||
		!strings.Contains(out.String(), "identity.user=bob identity.method=bearer") {
		t.Errorf("log: %s", out.String())
	}
}

func TestBearerAudienceApartFromService(t *testing.T) {
	key := newIssuerKey(t, "ES256")
	set, _ := NewKeySet(key.private.Public())
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Audience: "registry-aud", Keys: set}
	c := validClaims(time.Now())
	if _, err := b.Authorize(bearerRequest(key.sign(t, c, "")), nil); !errors.Is(err, ErrTokenAudience) {
		t.Errorf("token for the service name: %v", err)
	}
	c.Audience = []string{"registry-aud"}
	if _, err := b.Authorize(bearerRequest(key.sign(t, c, "")), nil); err != nil {
		t.Errorf("token for the audience: %v", err)
	}
}
