package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/logging"
)

// EndpointConfig configures one endpoint; see config.Endpoint for what
// each setting means.
type EndpointConfig struct {
	Name              string
	URL               string
	Headers           http.Header
	Timeout           time.Duration
	Backoff           time.Duration
	MaxBackoff        time.Duration
	MaxQueue          int
	MaxBatch          int
	IgnoredMediaTypes []string
	IgnoredActions    []string
}

// Stats are an endpoint's counts since the start.
type Stats struct {
	Name string
	// Delivered counts events the endpoint accepted (any 2xx); Failed,
	// events it refused for good (a 4xx but 408 and 429); Dropped, events
	// pushed out of a full queue or still queued when the process stopped.
	Delivered, Failed, Dropped int64
	Queued                     int
	LastSuccess                time.Time // zero before the first
}

// endpoint sends its queue's events, in order, one request at a time.
type endpoint struct {
	cfg    EndpointConfig
	client *http.Client
	log    *slog.Logger
	q      *queue

	delivered, failed, dropped atomic.Int64
	lastSuccess                atomic.Int64 // Unix nanoseconds; 0 before the first
	warned                     logging.EveryMinute

	// closing asks the sender to return once the queue is empty; ctx's
	// end, to return at once, dropping what is left.
	closing chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
}

func newEndpoint(cfg EndpointConfig, log *slog.Logger) *endpoint {
	ctx, cancel := context.WithCancel(context.Background())
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &endpoint{
		cfg: cfg,
		client: &http.Client{Transport: transport,
			// A redirect is not followed: the configured headers (a
			// token) would go with the events to wherever it points.
			// Answered, it is a failure like any other not 2xx.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:     log,
		q:       newQueue(cfg.MaxQueue),
		closing: make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
}

// wants reports whether the endpoint takes ev, by its filters.
func (e *endpoint) wants(ev *Event) bool {
	return !slices.Contains(e.cfg.IgnoredActions, ev.Action) &&
		(ev.Target.MediaType == "" || !slices.Contains(e.cfg.IgnoredMediaTypes, ev.Target.MediaType))
}

func (e *endpoint) push(ev Event) {
	if n := e.q.push(ev); n > 0 {
		e.dropped.Add(int64(n))
	}
}

func (e *endpoint) stats() Stats {
	s := Stats{Name: e.cfg.Name, Delivered: e.delivered.Load(), Failed: e.failed.Load(), Dropped: e.dropped.Load(), Queued: e.q.len()}
	if ns := e.lastSuccess.Load(); ns != 0 {
		s.LastSuccess = time.Unix(0, ns)
	}
	return s
}

// run sends batches until closing and the queue is empty, or until ctx
// ends. A batch is what waits, up to MaxBatch events: an endpoint that
// fell behind catches up in a few requests instead of one per event,
// which the envelope allows (it holds "one or more events") and receivers
// written for Distribution read as a list; MaxBatch 1 sends each alone,
// as Distribution does, for a receiver that reads only the first.
//
// A batch that fails is tried again, the same events in the same order,
// after a wait that doubles from Backoff to MaxBackoff, for as long as the
// endpoint fails: meanwhile new events queue behind it, the oldest dropped
// when the queue is full. A 4xx other than 408 and 429 says the endpoint
// will never take these events (a body it refuses, a URL that is not
// there, credentials it does not accept): the batch is counted failed and
// dropped, so that one bad answer does not hold every later event.
func (e *endpoint) run() {
	defer close(e.done)
	var batch []Event
	failures := 0
	for {
		if len(batch) == 0 {
			batch = e.q.take(batch, e.cfg.MaxBatch)
		}
		if len(batch) == 0 {
			select {
			case <-e.q.ready:
				continue
			case <-e.closing:
				if e.q.len() > 0 {
					continue
				}
				e.dropped.Add(int64(e.q.close()))
				return
			case <-e.ctx.Done():
				e.dropped.Add(int64(e.q.close()))
				return
			}
		}
		status, retryAfter, err := e.send(batch)
		switch {
		case e.ctx.Err() != nil:
			e.dropped.Add(int64(len(batch) + e.q.close()))
			return
		case err == nil && status/100 == 2:
			e.delivered.Add(int64(len(batch)))
			e.lastSuccess.Store(time.Now().UnixNano())
			if failures > 0 {
				e.log.Info("notification endpoint delivering again", "endpoint", e.cfg.Name, "failures", failures)
			}
			failures = 0
			clear(batch) // let go of what the events hold
			batch = batch[:0]
		case err == nil && refused(status):
			e.failed.Add(int64(len(batch)))
			if e.warned.Allow() {
				e.log.Warn("notification endpoint refused events, which are dropped (logged at most once a minute)", "endpoint", e.cfg.Name, "status", status, "events", len(batch))
			}
			failures = 0
			clear(batch) // let go of what the events hold
			batch = batch[:0]
		default:
			failures++
			wait := max(jitter(backoff(e.cfg.Backoff, e.cfg.MaxBackoff, failures)), retryAfter)
			if e.warned.Allow() {
				args := []any{"endpoint", e.cfg.Name, "queued", e.q.len() + len(batch), "retry_in", wait}
				if err != nil {
					args = append(args, "error", err)
				} else {
					args = append(args, "status", status)
				}
				e.log.Warn("notification endpoint failing; its events wait and are tried again (logged at most once a minute)", args...)
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-e.ctx.Done():
				t.Stop()
			}
		}
	}
}

// refused tells the answers that trying again will not change.
func refused(status int) bool {
	return status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// backoff is the wait after the failures-th failure in a row: initial,
// doubling each time, at most limit.
func backoff(initial, limit time.Duration, failures int) time.Duration {
	d := initial
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// jitter spreads a wait over three quarters to five quarters of it, so
// that replicas whose endpoint failed at once do not all try it again at
// once when it comes back.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*3/4 + rand.N(d/2+1)
}

// send posts batch and returns the endpoint's status and the wait its
// Retry-After asks for (0 without one), or the error that kept it from
// answering. The error never holds the URL, whose userinfo may be a
// password.
func (e *endpoint) send(batch []Event) (int, time.Duration, error) {
	body, err := json.Marshal(Envelope{Events: batch})
	if err != nil {
		return 0, 0, err // unreachable: events hold strings and numbers
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, withoutURL(err)
	}
	for k, vs := range e.cfg.Headers {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", MediaType)
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, 0, withoutURL(err)
	}
	// Read a little of the answer so the connection can be used again.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	wait, _ := httpx.RetryAfter(resp.Header.Get("Retry-After"), time.Now(), e.cfg.MaxBackoff)
	return resp.StatusCode, wait, nil
}

func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
