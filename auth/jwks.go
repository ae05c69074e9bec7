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
	"sync"
	"time"
)

// JWKS fetches a token issuer's keys from a JWK Set URL and caches them. A
// token signed with a key id the cache does not know triggers a refetch, so
// key rotation at the issuer needs no restart; refetches are spaced at least
// MinRefresh apart so forged kids cannot make us hammer the issuer.
type JWKS struct {
	URL        string
	Client     *http.Client  // nil: a client with a 10s timeout
	MaxAge     time.Duration // keys are refetched when older; 0: one hour
	MinRefresh time.Duration // 0: 30 seconds
	Logger     *slog.Logger

	mu      sync.Mutex
	keys    *KeySet
	fetched time.Time
}

var _ Keys = (*JWKS)(nil)

const maxJWKSSize = 1 << 20

// jwksTimeout bounds a fetch of the keys.
const jwksTimeout = 10 * time.Second

func (j *JWKS) Lookup(ctx context.Context, kid string) ([]crypto.PublicKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	age := time.Since(j.fetched)
	_, known := j.lookupKid(kid)
	wanted := j.keys == nil || age > cmp.Or(j.MaxAge, time.Hour) || (!known && kid != "")
	// Even while the issuer is down, at most one fetch per MinRefresh: the
	// others answer at once from the cache, or fail, instead of queueing.
	if wanted && (j.fetched.IsZero() || age > cmp.Or(j.MinRefresh, 30*time.Second)) {
		// Not on the caller's context: a client that hangs up must not
		// spoil the refresh that the next MinRefresh then waits for.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
		err := j.fetch(fctx)
		cancel()
		if err != nil {
			if j.keys == nil {
				return nil, err
			}
			orDefault(j.Logger).Warn("auth: JWKS refresh failed, keeping cached keys", "url", j.URL, "err", err)
		}
	}
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

func (j *JWKS) lookupKid(kid string) (crypto.PublicKey, bool) {
	if j.keys == nil {
		return nil, false
	}
	k, ok := j.keys.byKid[kid]
	return k, ok
}

// fetch replaces the cache; on failure the old keys stay in use.
func (j *JWKS) fetch(ctx context.Context) error {
	j.fetched = time.Now()
	client := j.Client
	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching JWKS %s: %s", j.URL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	if err != nil {
		return fmt.Errorf("fetching JWKS: %w", err)
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return err
	}
	j.keys = keys
	return nil
}
