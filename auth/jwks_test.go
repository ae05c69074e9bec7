package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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

// A JWKS URL carrying a password is masked in the errors that name it,
// which reach the logs.
func TestJWKSErrorMasksPassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	j := &JWKS{URL: strings.Replace(srv.URL, "http://", "http://svc:S3cr3t@", 1), Logger: quietLogger}
	_, err := j.Lookup(t.Context(), "")
	if err == nil || strings.Contains(err.Error(), "S3cr3t") || !strings.Contains(err.Error(), "503") {
		t.Errorf("error %v", err)
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

// An issuer that stops answering holds up no caller whose key is cached,
// even once the keys are due for a refresh; a caller whose kid is new
// waits for the fetch and gets the key it brings.
func TestJWKSSlowIssuerHoldsUpOnlyWhoNeedsIt(t *testing.T) {
	key, next := newIssuerKey(t, "EdDSA"), newIssuerKey(t, "ES256")
	gate := make(chan struct{})
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys := []crypto.PublicKey{key.private.Public()}
		if fetches.Add(1) > 1 {
			<-gate // the issuer hangs from its second fetch on
			keys = append(keys, next.private.Public())
		}
		set, err := NewKeySet(keys...)
		if err != nil {
			t.Error(err)
		}
		json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()
	defer close(gate)
	jwks := &JWKS{URL: srv.URL, MaxAge: time.Nanosecond, MinRefresh: time.Nanosecond}
	kid, _ := thumbprint(key.private.Public())
	if keys, err := jwks.Lookup(t.Context(), kid); err != nil || len(keys) != 1 {
		t.Fatalf("first lookup: %v %v", keys, err)
	}

	nextKid, _ := thumbprint(next.private.Public())
	waiter := make(chan []crypto.PublicKey, 1)
	go func() {
		keys, _ := jwks.Lookup(t.Context(), nextKid)
		waiter <- keys
	}()
	for fetches.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	for range 5 {
		answered := make(chan error, 1)
		go func() {
			keys, err := jwks.Lookup(t.Context(), kid)
			if err == nil && len(keys) != 1 {
				err = fmt.Errorf("%d keys", len(keys))
			}
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				t.Fatalf("cached key during a hanging fetch: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a cached key waits for a fetch of the issuer that hangs")
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches: the lookups during the one in flight must start none", n)
	}
	select {
	case keys := <-waiter:
		t.Fatalf("the caller with a new kid answered %v before the fetch ended", keys)
	case <-time.After(50 * time.Millisecond):
	}
	gate <- struct{}{}
	select {
	case keys := <-waiter:
		if len(keys) != 1 {
			t.Fatalf("new kid after the fetch: %v", keys)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller with a new kid is still waiting after the fetch")
	}
}

// Callers that all arrive before the first keys share one fetch.
func TestJWKSFirstCallersShareAFetch(t *testing.T) {
	key := newIssuerKey(t, "EdDSA")
	srv := newJWKSServer(t, key.private.Public())
	jwks := &JWKS{URL: srv.URL}
	kid, _ := thumbprint(key.private.Public())
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if keys, err := jwks.Lookup(t.Context(), kid); err != nil || len(keys) != 1 {
				t.Errorf("lookup: %v %v", keys, err)
			}
		})
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for callers arriving together, want 1", n)
	}
}
