package metrics

import (
	"net/http"
	"strconv"
	"time"

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

		next.ServeHTTP(w, r)

		labels.Resolve(r, info)
		route := labels.Route
		if route == "" {
			route = "none"
		}
		method := methodLabel(r.Method)
		m.requests.WithLabelValues(route, method, strconv.Itoa(rec.Status())).Inc()
		m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		m.bytesIn.WithLabelValues(route).Add(float64(body.BytesRead()))
		m.bytesOut.WithLabelValues(route).Add(float64(rec.Written()))
	})
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
