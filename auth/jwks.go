package auth

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// JWKS fetches a token issuer's keys from a JWK Set URL and caches them. A
// token signed with a key id the cache does not know triggers a refetch, so
// key rotation at the issuer needs no restart; refetches are spaced at least
// MinRefresh apart so forged kids cannot make us hammer the issuer.
//
// A fetch runs on its own, with no lock held: callers whose key is cached
// answer at once, however slow the issuer, and only those that need what
// the fetch brings (the first keys, or a key id not cached) wait for it.
type JWKS struct {
	URL        string
	Client     *http.Client  // nil: a client with a 10s timeout
	MaxAge     time.Duration // keys are refetched when older; 0: one hour
	MinRefresh time.Duration // 0: 30 seconds
	Logger     *slog.Logger

	mu       sync.Mutex
	keys     *KeySet
	fetched  time.Time  // when the latest fetch began
	fetching *jwksFetch // the fetch in flight, or nil
}

// jwksFetch is a fetch in flight; err is set before done is closed.
type jwksFetch struct {
	done chan struct{}
	err  error
}

var _ Keys = (*JWKS)(nil)

const maxJWKSSize = 1 << 20

// jwksTimeout bounds a fetch of the keys.
const jwksTimeout = 10 * time.Second

func (j *JWKS) Lookup(ctx context.Context, kid string) ([]crypto.PublicKey, error) {
	j.mu.Lock()
	age := time.Since(j.fetched)
	_, known := j.lookupKid(kid)
	wanted := j.keys == nil || age > cmp.Or(j.MaxAge, time.Hour) || (!known && kid != "")
	// Even while the issuer is down, at most one fetch per MinRefresh: the
	// others answer at once from the cache, or fail, instead of queueing.
	if wanted && j.fetching == nil && (j.fetched.IsZero() || age > cmp.Or(j.MinRefresh, 30*time.Second)) {
		j.start(ctx)
	}
	// Keys merely old are still good while their successors come.
	if f := j.fetching; f != nil && (j.keys == nil || (!known && kid != "")) {
		j.mu.Unlock()
		<-f.done // bounded by jwksTimeout
		j.mu.Lock()
		if j.keys == nil {
			j.mu.Unlock()
			return nil, f.err
		}
	}
	defer j.mu.Unlock()
	if j.keys == nil {
		return nil, errors.New("JWKS: no keys fetched yet")
	}
	if k, ok := j.lookupKid(kid); ok {
		return []crypto.PublicKey{k}, nil
	}
	if kid != "" {
		return nil, nil
	}
	return j.keys.all, nil
}

// start begins a fetch; j.mu is held. Not on the caller's context: a
// client that hangs up must not spoil the refresh that the next MinRefresh
// then waits for.
func (j *JWKS) start(ctx context.Context) {
	f := &jwksFetch{done: make(chan struct{})}
	j.fetching, j.fetched = f, time.Now()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
	go func() {
		defer cancel()
		keys, err := j.fetch(fctx)
		j.mu.Lock()
		if err == nil {
			j.keys = keys
		} else if j.keys != nil {
			orDefault(j.Logger).Warn("auth: JWKS refresh failed, keeping cached keys", "url", redactedURL(j.URL), "err", err)
		}
		f.err, j.fetching = err, nil
		j.mu.Unlock()
		close(f.done)
	}()
}

func (j *JWKS) lookupKid(kid string) (crypto.PublicKey, bool) {
	if j.keys == nil {
		return nil, false
	}
	k, ok := j.keys.byKid[kid]
	return k, ok
}

// fetch reads the issuer's keys.
func (j *JWKS) fetch(ctx context.Context) (*KeySet, error) {
	client := j.Client
	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS %s: %s", redactedURL(j.URL), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	return parseJWKS(data)
}

// redactedURL is raw with any password in it masked, for logs and errors
// (net/http masks it in its own errors).
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}
