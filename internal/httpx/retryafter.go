package httpx

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfter reads a Retry-After header (RFC 9110, 10.2.3: seconds, or an
// HTTP date, counted from now) as a wait of at most limit; ok is false
// when there is none or it cannot be read. A past date is no wait. The
// seconds are compared with limit before they are multiplied, which could
// wrap.
func RetryAfter(v string, now time.Time, limit time.Duration) (wait time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	secs, err := strconv.ParseUint(v, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || err == nil && secs > uint64(limit/time.Second):
		return limit, true
	case err == nil:
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(at.Sub(now), 0), limit), true
}
