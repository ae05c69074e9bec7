// Package metrics holds Lading's Prometheus metrics on a registry of their
// own, created by New and passed to whoever records: nothing is registered
// globally, so tests and several servers in one process never collide.
//
// Every recording method is safe on a nil *Metrics and does nothing, so a
// component can take metrics as an optional dependency.
package metrics

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lading-registry/lading/storage/driver"
)

const namespace = "lading"

// Metrics is the set of Lading's metrics and the registry they live in.
type Metrics struct {
	registry *prometheus.Registry

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	bytesIn       *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	seriesByKey   sync.Map // seriesKey → *requestSeries
	uploadsBegun  prometheus.Counter
	uploadsEnded  prometheus.Counter
	driverLatency *prometheus.HistogramVec
	driverErrors  *prometheus.CounterVec
	cacheHits     *prometheus.CounterVec
	cacheMisses   *prometheus.CounterVec
	gcRuns        prometheus.Counter
	gcBlobs       prometheus.Counter
	gcBytes       prometheus.Counter
	gcTags        prometheus.Counter
	stored        *stored
	maintFailures *prometheus.CounterVec
	redisFallback *prometheus.CounterVec
}

// New creates the metrics on a fresh registry, with the Go runtime and
// process collectors beside them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{
		registry: reg,
		requests: f.counterVec("http_requests_total",
			"HTTP requests answered, by route, method and status code.", "route", "method", "status"),
		duration: f.histogramVec("http_request_duration_seconds",
			"Time from request to the end of the response body, by route and method.",
			// 5ms to 5 minutes: manifests at the low end, multi-GiB layers
			// at the top, at the bounds latency objectives are written in
			// (100ms, 250ms, 1s).
			[]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}, "route", "method"),
		bytesIn: f.counterVec("http_request_bytes_total",
			"Request body bytes read, by route.", "route"),
		bytesOut: f.counterVec("http_response_bytes_total",
			"Response body bytes sent, by route.", "route"),
		// Counters, not a gauge of sessions in progress: sessions outlive
		// the process that began them (a restart, another replica ends
		// them, an abandoned one is purged by lading gc), so a per-process
		// gauge would drift, even below zero. Sums over replicas of the
		// counters' increases stay exact.
		uploadsBegun: f.counter("upload_sessions_started_total",
			"Upload sessions created through this process."),
		uploadsEnded: f.counter("upload_sessions_ended_total",
			"Upload sessions committed or cancelled through this process, wherever they began. Abandoned sessions removed by purging are not counted."),
		driverLatency: f.histogramVec("storage_operation_duration_seconds",
			"Latency of storage driver operations, by driver and operation.",
			// 0.1ms (memory, page cache) to about 26s (a large object-store copy).
			prometheus.ExponentialBuckets(0.0001, 4, 10), "driver", "op"),
		driverErrors: f.counterVec("storage_operation_errors_total",
			"Storage driver operations that failed, by driver and operation. Not-found, already-exists and cancelled calls are normal outcomes and not counted.", "driver", "op"),
		cacheHits: f.counterVec("cache_hits_total",
			"Cache lookups answered from the cache, by cache.", "cache"),
		cacheMisses: f.counterVec("cache_misses_total",
			"Cache lookups that went to storage, by cache.", "cache"),
		gcRuns: f.counter("gc_runs_total",
			"Garbage collection runs completed."),
		gcBlobs: f.counter("gc_blobs_deleted_total",
			"Blobs removed by garbage collection."),
		gcBytes: f.counter("gc_bytes_reclaimed_total",
			"Bytes of blobs removed by garbage collection."),
		gcTags: f.counter("gc_tags_evicted_total",
			"A mirror's tags removed by garbage collection as not pulled for proxy.evictafter."),
		maintFailures: f.counterVec("maintenance_failures_total",
			"Scheduled garbage collections (task gc), upload purges (task purge) and applications of the retention rules (task retention) of this process that failed; each is logged at error.", "task"),
		redisFallback: f.counterVec("redis_fallbacks_total",
			"Cache reads (op cache) and locks (op lock) that Redis failed, answered from the storage instead.", "op"),
	}
	m.stored = &stored{}
	reg.MustRegister(m.stored)
	// At 0 from the start: an alert on an increase needs the series there
	// before the first failure.
	for _, task := range []string{"gc", "purge"} {
		m.maintFailures.WithLabelValues(task)
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// factory registers each metric on one registry as it is made.
type factory struct{ reg *prometheus.Registry }

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

// Handler serves the metrics in the Prometheus exposition format, for
// /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// UploadObserver returns a func for registry.Options.UploadObserver: +1
// counts a session started, -1 one ended.
func (m *Metrics) UploadObserver() func(delta int) {
	if m == nil {
		return nil
	}
	return func(delta int) {
		if delta > 0 {
			m.uploadsBegun.Inc()
		} else {
			m.uploadsEnded.Inc()
		}
	}
}

// CacheObserver returns a func for registry.Options.CacheObserver that
// counts the named cache's ("links") hits and misses.
func (m *Metrics) CacheObserver(cache string) func(hit bool) {
	if m == nil {
		return nil
	}
	hits, misses := m.cacheHits.WithLabelValues(cache), m.cacheMisses.WithLabelValues(cache)
	return func(hit bool) {
		if hit {
			hits.Inc()
		} else {
			misses.Inc()
		}
	}
}

// RedisFallback returns the func that counts a fallback from a failed
// Redis to the storage for op ("cache", "lock"), the series at 0 from the
// call on: an alert on an increase needs it there before the first.
func (m *Metrics) RedisFallback(op string) func() {
	if m == nil {
		return nil
	}
	c := m.redisFallback.WithLabelValues(op)
	return c.Inc
}

// GCRun records one completed garbage collection and what it reclaimed.
func (m *Metrics) GCRun(tagsEvicted, blobsDeleted, bytesReclaimed int64) {
	if m != nil {
		m.gcRuns.Inc()
		m.gcTags.Add(float64(tagsEvicted))
		m.gcBlobs.Add(float64(blobsDeleted))
		m.gcBytes.Add(float64(bytesReclaimed))
	}
}

// MaintenanceFailed records a scheduled task ("gc", "purge", "retention")
// that failed.
func (m *Metrics) MaintenanceFailed(task string) {
	if m != nil {
		m.maintFailures.WithLabelValues(task).Inc()
	}
}

// BuildInfo exports the running build, a constant 1 labelled with its
// version, commit and Go version, so dashboards can tell replicas apart
// during a rolling upgrade.
func (m *Metrics) BuildInfo(version, commit, goVersion string) {
	if m == nil {
		return
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "The running build: 1, labelled with its version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": goVersion},
	})
	g.Set(1)
	m.registry.MustRegister(g)
}

// CertificateExpiry reports the end of the served TLS certificate's
// validity, read from current at each scrape: a renewal that never came
// (or never loaded) shows before clients start failing their handshakes.
func (m *Metrics) CertificateExpiry(current func() (time.Time, bool)) {
	if m == nil {
		return
	}
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "tls_certificate_expiry_timestamp_seconds",
		Help: "When the TLS certificate being served stops being valid (its NotAfter), as a Unix time.",
	}, func() float64 {
		if end, ok := current(); ok {
			return float64(end.Unix())
		}
		return math.NaN()
	}))
}

// FileStale reports whether a file read again on change (named by its
// configuration key) holds a change that did not load, the previous
// content staying in force: an edit that locks nobody out, and changes
// nothing either.
func (m *Metrics) FileStale(key string, stale func() bool) {
	if m == nil {
		return
	}
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "config_file_stale",
		Help:        "1 while a file read again on change (by its configuration key) has a change that did not load, its previous content in force; else 0.",
		ConstLabels: prometheus.Labels{"key": key},
	}, func() float64 {
		if stale() {
			return 1
		}
		return 0
	}))
}

// DriverObserver returns the observer to give driver.Instrument for the
// named driver: it times every operation and counts the failed ones.
func (m *Metrics) DriverObserver(driverName string) driver.Observer {
	if m == nil {
		return nil
	}
	return func(op string, elapsed time.Duration, err error) {
		m.driverLatency.WithLabelValues(driverName, op).Observe(elapsed.Seconds())
		if failed(err) {
			m.driverErrors.WithLabelValues(driverName, op).Inc()
		}
	}
}

// failed tells a backend failure from the outcomes a registry expects:
// a missing path (a HEAD for an unknown blob), a lost Create race (the
// compare-and-set working) and a caller that went away.
func failed(err error) bool {
	switch {
	case err == nil, driver.IsNotFound(err), errors.Is(err, driver.ErrExists),
		errors.Is(err, driver.ErrStopWalk), errors.Is(err, context.Canceled):
		return false
	}
	return true
}
