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
// apart. A login holds an attempt while its password is checked, and a
// successful one gives it back: only failures are counted, but no more
// than Burst checks from one address run at once.
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

// Reserve spends one attempt of r's address before its password is
// checked, so that guesses sent side by side cannot all reach the check
// before any failure counts. It returns how long the address must wait
// when it has none left, else zero and succeeded, which a login that
// proves right calls to give its attempt back: only failures are counted.
func (l *Limiter) Reserve(r *http.Request) (wait time.Duration, succeeded func()) {
	if l == nil {
		return 0, func() {}
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
	if b.tokens < 1 {
		return max(time.Duration((1-b.tokens)*float64(l.per)), time.Nanosecond), nil
	}
	b.tokens--
	return 0, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if b := l.refill(addr); b != nil {
			b.tokens = min(b.tokens+1, l.burst)
		}
	}
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
