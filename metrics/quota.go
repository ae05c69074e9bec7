package metrics

import "github.com/prometheus/client_golang/prometheus"

// Quotas reports the storage quotas: each rule's usage as this process
// last counted it, its limit, and the pushes it refused. A rule is
// labelled by its pattern; a repository never is. Safe on nil.
type Quotas struct {
	used, limit *prometheus.GaugeVec
	refused     *prometheus.CounterVec
}

// Quotas registers the quotas' metrics and returns them; call it once,
// where the rules are configured. Nil on a nil *Metrics.
func (m *Metrics) Quotas() *Quotas {
	if m == nil {
		return nil
	}
	f := factory{m.registry}
	return &Quotas{
		used: f.gaugeVec("quota_used_bytes",
			"Bytes the repositories a quota rule without each takes link together, as this process last counted them (at most the rule's bound before a push it checked), by rule.", "rule"),
		limit: f.gaugeVec("quota_limit_bytes",
			"The limit of each quota rule without each, by rule.", "rule"),
		refused: f.counterVec("quota_refusals_total",
			"Upload starts and blob commits a quota refused through this process (403 DENIED), by rule.", "rule"),
	}
}

// Rule makes rule's series: its limit, when it caps a total (each
// false), and its refusals at 0, for alerts on an increase.
func (q *Quotas) Rule(rule string, limit int64, each bool) {
	if q == nil {
		return
	}
	q.refused.WithLabelValues(rule)
	if !each {
		q.limit.WithLabelValues(rule).Set(float64(limit))
	}
}

// Used records what a count of a total rule found.
func (q *Quotas) Used(rule string, bytes int64) {
	if q != nil {
		q.used.WithLabelValues(rule).Set(float64(bytes))
	}
}

// Refused counts a push a rule refused.
func (q *Quotas) Refused(rule string) {
	if q != nil {
		q.refused.WithLabelValues(rule).Inc()
	}
}
