package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lading-registry/lading/internal/httpx"
)

// Instrument counts every request through next by route, method and
// status, times it, and adds up body bytes in and out by route.
//
// The route comes from Labels filled inside the router (httpx.Label), or
// from info(r) when nothing filled them and info is not nil; info has the
// shape of logging.AccessLog's so one function (server.RouteLabels) feeds
// both. Requests that never reached a route count as route "none". The
// repository is never a label: every repository would become a time
// series.
func (m *Metrics) Instrument(next http.Handler, info func(*http.Request) (route, repo string)) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		labels, r := httpx.WithLabels(r)
		rec, w := httpx.Record(w)
		body := httpx.CountBody(r)
		// Deferred: a request cut off by a panic after its status went out
		// (net/http's ErrAbortHandler, a download broken midway) counts.
		defer func() {
			labels.Resolve(r, info)
			route := labels.Route
			if route == "" {
				route = "none"
			}
			s := m.series(route, methodLabel(r.Method), rec.Status())
			s.requests.Inc()
			s.duration.Observe(time.Since(start).Seconds())
			s.bytesIn.Add(float64(body.BytesRead()))
			s.bytesOut.Add(float64(rec.Written()))
		}()
		next.ServeHTTP(w, r)
	})
}

// requestSeries are the series one request's route, method and status
// record into, looked up once: WithLabelValues hashes its labels on every
// call, four times per request, which cost a HEAD about 1% of the server's
// time. The keys are bounded like the labels (routes, methods, statuses).
type requestSeries struct {
	requests, bytesIn, bytesOut prometheus.Counter
	duration                    prometheus.Observer
}

type seriesKey struct {
	route, method string
	status        int
}

func (m *Metrics) series(route, method string, status int) *requestSeries {
	k := seriesKey{route, method, status}
	if s, ok := m.seriesByKey.Load(k); ok {
		return s.(*requestSeries)
	}
	s := &requestSeries{
		requests: m.requests.WithLabelValues(route, method, strconv.Itoa(status)),
		duration: m.duration.WithLabelValues(route, method),
		bytesIn:  m.bytesIn.WithLabelValues(route),
		bytesOut: m.bytesOut.WithLabelValues(route),
	}
	got, _ := m.seriesByKey.LoadOrStore(k, s)
	return got.(*requestSeries)
}

// methodLabel folds methods a registry does not serve into one value, so
// a client inventing methods cannot invent time series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "OTHER"
}
