package metrics

import "github.com/prometheus/client_golang/prometheus"

// Proxy counts what a pull-through cache does; it implements
// proxy.Observer. Safe on nil.
type Proxy struct {
	upstream *prometheus.CounterVec
	fetched  *prometheus.CounterVec
	lookups  *prometheus.CounterVec
}

// Proxy registers the pull-through cache's metrics and returns them; call
// it once, on a mirror. Nil on a nil *Metrics.
func (m *Metrics) Proxy() *Proxy {
	if m == nil {
		return nil
	}
	f := factory{m.registry}
	p := &Proxy{
		upstream: f.counterVec("proxy_upstream_requests_total",
			"Requests of the pull-through cache to its upstream, by op (manifest_head, manifest_get, blob_head, blob_get, tags) and outcome (ok, not_found, throttled, unavailable, refused).", "op", "outcome"),
		fetched: f.counterVec("proxy_upstream_bytes_total",
			"Bytes received from the upstream, by kind (manifest, blob).", "kind"),
		lookups: f.counterVec("proxy_lookups_total",
			"Pulls of the pull-through cache by kind (manifest, blob) and result: hit (served from storage), miss (fetched upstream), stale (served from storage because the upstream could not be asked), waited (a blob another request was fetching, served once stored).", "kind", "result"),
	}
	// At 0 from the start, for alerts on an increase.
	for _, op := range []string{"manifest_head", "manifest_get", "blob_head", "blob_get", "tags"} {
		p.upstream.WithLabelValues(op, "unavailable")
	}
	p.lookups.WithLabelValues("manifest", "stale")
	return p
}

// Upstream counts one request to the upstream.
func (p *Proxy) Upstream(op, outcome string) {
	if p != nil {
		p.upstream.WithLabelValues(op, outcome).Inc()
	}
}

// Fetched counts bytes received from the upstream.
func (p *Proxy) Fetched(kind string, n int64) {
	if p != nil {
		p.fetched.WithLabelValues(kind).Add(float64(n))
	}
}

// Lookup counts a pull by its result.
func (p *Proxy) Lookup(kind, result string) {
	if p != nil {
		p.lookups.WithLabelValues(kind, result).Inc()
	}
}
