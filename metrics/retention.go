package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Retention counts the scheduled applications of the tag retention
// rules. Safe on nil.
type Retention struct {
	runs        *prometheus.CounterVec
	removed     prometheus.Counter
	lastSuccess prometheus.Gauge
}

// Retention registers the retention rules' metrics and returns them; call
// it once, where the rules are applied. Nil on a nil *Metrics.
func (m *Metrics) Retention() *Retention {
	if m == nil {
		return nil
	}
	f := factory{m.registry}
	r := &Retention{
		runs: f.counterVec("retention_runs_total",
			"Applications of the tag retention rules by this process, by outcome: ok, or failed (the run, or a repository in it; each is logged at error).", "outcome"),
		removed: f.counter("retention_tags_removed_total",
			"Tags the retention rules removed through this process (none in a dry run)."),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "retention_last_success_timestamp_seconds",
			Help: "When an application of the retention rules last ended without a failure, as a Unix time: any replica's as the storage told at this process's start, then this process's; 0 before the first. Take the maximum over replicas."}),
	}
	m.registry.MustRegister(r.lastSuccess)
	// At 0 from the start, for alerts on an increase.
	r.runs.WithLabelValues("failed")
	m.maintFailures.WithLabelValues("retention")
	return r
}

// SetLastSuccess sets the time of the last run without a failure, as the
// storage records it (any replica's), at the start.
func (r *Retention) SetLastSuccess(t time.Time) {
	if r != nil {
		r.lastSuccess.Set(float64(t.UnixNano()) / 1e9)
	}
}

// Run records one application of the rules, the tags it removed, and
// whether it failed.
func (r *Retention) Run(removed int, failed bool) {
	if r == nil {
		return
	}
	r.removed.Add(float64(removed))
	if failed {
		r.runs.WithLabelValues("failed").Inc()
		return
	}
	r.runs.WithLabelValues("ok").Inc()
	r.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
}
