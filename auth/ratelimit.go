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
// apart. Only failures are counted, but a check holds one of the attempts
// left while it runs: no more checks from one address run at once than it
// has attempts left, so guesses sent side by side cannot all be checked
// before their failures count. A login finding every attempt left held
// waits for a check to end rather than being refused: correct logins side
// by side (a pull of many layers, with Basic auth) all pass.
//
// The address is the host of the request's RemoteAddr (for IPv6, its /64):
// behind a proxy the server must put the real client address there
// (http.trustedproxies, httpx.ForwardedClient), or every client shares one
// bucket.
type Limiter struct {
	burst float64
	per   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens   float64 // failures left
	at       time.Time
	checking int           // checks running
	ended    chan struct{} // closed when one ends; nil while none is awaited
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

// Reserve holds one attempt of r's address while its password is
// checked. It returns how long the address must wait when it has none
// left, else zero and done, which the check calls with its outcome: a
// failure spends the attempt, a success gives it back.
func (l *Limiter) Reserve(r *http.Request) (wait time.Duration, done func(ok bool)) {
	if l == nil {
		return 0, func(bool) {}
	}
	addr := clientAddr(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
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
		if float64(b.checking) <= b.tokens-1 {
			b.checking++
			return 0, func(ok bool) { l.end(b, ok) }
		}
		// Every attempt left is held by a check running: its outcome
		// decides whether this one may be checked.
		if b.ended == nil {
			b.ended = make(chan struct{})
		}
		ended := b.ended
		l.mu.Unlock()
		select {
		case <-ended:
			l.mu.Lock()
		case <-r.Context().Done():
			l.mu.Lock()
			return l.per, nil // the client is gone
		}
	}
}

// end records the outcome of a check of bucket b.
func (l *Limiter) end(b *bucket, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b.checking--
	if !ok {
		b.tokens--
	}
	if b.ended != nil {
		close(b.ended)
		b.ended = nil
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
		if b := l.refill(addr); b.tokens >= l.burst && b.checking == 0 {
			delete(l.buckets, addr)
		}
	}
	for addr, b := range l.buckets {
		if len(l.buckets) < maxBuckets {
			break
		}
		if b.checking == 0 { // a check running ends on its bucket
			delete(l.buckets, addr)
		}
	}
}
