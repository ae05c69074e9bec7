// Package health answers /healthz (the process serves HTTP) and /readyz
// (it can do its job: storage answers) for load balancers and
// orchestrators.
package health

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/lading-registry/lading/storage/driver"
)

// Live answers 200 to every request: if it is answered at all, the process
// is alive.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
}

const (
	// checkTimeout bounds one readiness check, so a hung backend makes the
	// instance unready instead of hanging the probe.
	checkTimeout = 5 * time.Second
	// reuseFor lets a burst of probes (several balancers, a curious
	// client on a public listener) cost one backend call.
	reuseFor = time.Second
)

// Ready answers 200 when check passes and 503 when it fails. The reason is
// logged, not sent: /readyz may be public and errors name buckets and
// paths. Once draining is closed (a stop began), every answer is 503 at
// once, whatever a check found within reuseFor, so balancers stop sending
// before the server stops accepting.
func Ready(check func(context.Context) error, draining <-chan struct{}, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		mu      sync.Mutex
		checked time.Time
		last    error
	)
	cached := func(r *http.Request) error {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(checked) >= reuseFor {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), checkTimeout)
			last = check(ctx)
			cancel()
			checked = time.Now()
			if last != nil {
				logger.Warn("not ready", "err", last)
			}
		}
		return last
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if isClosed(draining) || cached(r) != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// isClosed reports whether c is closed; a nil c never is.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Storage returns a check that d answers at all. It lists the root: one
// cheap call that, on an object store, fails on a missing bucket or bad
// credentials, where a lookup of one key may just say "not found". Finding
// nothing is still an answer.
func Storage(d driver.Driver) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := d.List(ctx, "/")
		if driver.IsNotFound(err) {
			return nil
		}
		return err
	}
}
