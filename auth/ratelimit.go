package auth

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Limiter slows password guessing: each client address has a bucket of
// Burst failed logins, refilled one every Per. With the bucket empty, logins
// from that address are refused with 429 TOOMANYREQUESTS and Retry-After
// without even checking the password, so a correct guess cannot be told
// apart; successful logins cost nothing.
//
// The address is the host of the request's RemoteAddr (for IPv6, its /64):
// behind a proxy the server must put the real client address there, or
// every client shares one bucket.
type Limiter struct {
	burst float64
	per   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds memory under a flood of addresses; full buckets are
// dropped first since forgetting them changes nothing.
const maxBuckets = 10000

// Default limits: 10 failures in a row, then one every 6 seconds.
const (
	DefaultBurst = 10
	DefaultPer   = 6 * time.Second
)

// NewLimiter makes a Limiter; zero values take the defaults.
func NewLimiter(burst int, per time.Duration) *Limiter {
	if burst <= 0 {
		burst = DefaultBurst
	}
	if per <= 0 {
		per = DefaultPer
	}
	return &Limiter{burst: float64(burst), per: per, now: time.Now, buckets: map[string]*bucket{}}
}

// clientAddr is the bucket key: the IPv4 address, or the IPv6 /64, since
// one host commonly holds a whole /64.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if addr = addr.Unmap(); addr.Is6() {
		prefix, _ := addr.Prefix(64)
		return prefix.String()
	}
	return addr.String()
}

// Wait returns how long r's address must wait before its next login
// attempt; zero when it may try now.
func (l *Limiter) Wait(r *http.Request) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(clientAddr(r))
	if b == nil || b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.per))
}

// Fail records a failed login from r's address.
func (l *Limiter) Fail(r *http.Request) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	addr := clientAddr(r)
	b := l.refill(addr)
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune()
		}
		b = &bucket{tokens: l.burst, at: l.now()}
		l.buckets[addr] = b
	}
	b.tokens = max(b.tokens-1, 0)
}

func (l *Limiter) refill(addr string) *bucket {
	b := l.buckets[addr]
	if b == nil {
		return nil
	}
	now := l.now()
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.per))
	b.at = now
	return b
}

func (l *Limiter) prune() {
	for addr := range l.buckets {
		if b := l.refill(addr); b.tokens >= l.burst {
			delete(l.buckets, addr)
		}
	}
	for addr := range l.buckets {
		if len(l.buckets) < maxBuckets {
			break
		}
		delete(l.buckets, addr)
	}
}
