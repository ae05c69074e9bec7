package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksServer publishes a key set that the test can rotate, and counts
// fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []crypto.PublicKey
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...crypto.PublicKey) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		set, err := NewKeySet(s.keys...)
		s.mu.Unlock()
		if err != nil {
			t.Error(err)
		}
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) rotate(keys ...crypto.PublicKey) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func TestJWKSFetchAndRotate(t *testing.T) {
	old, next := newIssuerKey(t, "ES256"), newIssuerKey(t, "EdDSA")
	rsaKey := newIssuerKey(t, "RS256")
	srv := newJWKSServer(t, old.private.Public(), rsaKey.private.Public())
	jwks := &JWKS{URL: srv.URL, MinRefresh: time.Nanosecond}
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: jwks}
	need := []Access{Repository("team/app", ActionPull)}
	kid := func(k issuerKey) string { id, _ := thumbprint(k.private.Public()); return id }

	for _, k := range []issuerKey{old, rsaKey} {
		if _, err := b.Authorize(bearerRequest(k.sign(t, validClaims(time.Now()), kid(k))), need); err != nil {
			t.Fatalf("%s token: %v", k.method.Alg(), err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1 (cached)", n)
	}

	// The issuer rotates: a token with the new kid makes us refetch.
	srv.rotate(next.private.Public())
	if _, err := b.Authorize(bearerRequest(next.sign(t, validClaims(time.Now()), kid(next))), need); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	// The retired key is gone.
	_, err := b.Authorize(bearerRequest(old.sign(t, validClaims(time.Now()), kid(old))), need)
	if !errors.Is(err, ErrTokenSignature) {
		t.Errorf("retired key: %v", err)
	}
}

func TestJWKSRefetchesAreSpaced(t *testing.T) {
	key := newIssuerKey(t, "EdDSA")
	srv := newJWKSServer(t, key.private.Public())
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: &JWKS{URL: srv.URL}}
	for range 5 {
		tok := key.sign(t, validClaims(time.Now()), "forged-kid")
		if _, err := b.Authorize(bearerRequest(tok), nil); !errors.Is(err, ErrTokenSignature) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("unknown kids caused %d fetches, want 1", n)
	}
}

func TestJWKSUnreachable(t *testing.T) {
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	key := newIssuerKey(t, "EdDSA")
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: &JWKS{URL: srv.URL}, Logger: quietLogger}
	for range 3 {
		_, err := b.Authorize(bearerRequest(key.sign(t, validClaims(time.Now()), "")), nil)
		if status, _, _ := Challenge(err); status != 401 || !errors.Is(err, ErrTokenSignature) {
			t.Errorf("issuer keys unreachable: %v", err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches while the issuer is down, want 1", n)
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	key := newIssuerKey(t, "ES256")
	good, _ := toJWK(key.private.Public())
	good.Kid = "good"
	set, err := parseJWKS(mustJSON(t, jwkSet{Keys: []jwk{
		{Kty: "oct", Kid: "secret"},
		{Kty: "EC", Crv: "P-256", X: good.X, Y: good.X, Kid: "off-curve"},
		{Kty: "RSA", N: "AQAB", E: "AQAB", Kid: "tiny-rsa"},
		{Kty: "EC", Crv: good.Crv, X: good.X, Y: good.Y, Kid: "enc", Use: "enc"},
		good,
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.all) != 1 || set.byKid["good"] == nil {
		t.Errorf("kept %d keys: %v", len(set.all), set.byKid)
	}
	if _, err := parseJWKS([]byte(`{"keys":[]}`)); err == nil {
		t.Error("a set without usable keys must be an error")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A caller that hangs up while its token's kid makes the keys be fetched
// does not spoil the fetch for the callers after it.
func TestJWKSFetchOutlivesItsCaller(t *testing.T) {
	key := newIssuerKey(t, "EdDSA")
	srv := newJWKSServer(t, key.private.Public())
	jwks := &JWKS{URL: srv.URL}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the client is gone before the fetch starts
	kid, _ := thumbprint(key.private.Public())
	if keys, err := jwks.Lookup(ctx, kid); err != nil || len(keys) != 1 {
		t.Fatalf("lookup by a caller gone: %v %v", keys, err)
	}
}
