package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NotificationStats are one notification endpoint's counts since the
// start, as the notifier keeps them.
type NotificationStats struct {
	Endpoint                   string
	Delivered, Failed, Dropped int64
	Queued                     int
	LastSuccess                time.Time // zero before the first
}

var (
	notificationEvents = prometheus.NewDesc(namespace+"_notifications_events_total",
		"Events for a notification endpoint, by outcome: delivered (a 2xx), failed (refused with a 4xx other than 408 and 429, not tried again), dropped (out of a full queue, or still queued at the stop).",
		[]string{"endpoint", "outcome"}, nil)
	notificationQueued = prometheus.NewDesc(namespace+"_notifications_queued_events",
		"Events waiting in memory for a notification endpoint, besides the batch being sent.",
		[]string{"endpoint"}, nil)
	notificationSuccess = prometheus.NewDesc(namespace+"_notifications_last_success_timestamp_seconds",
		"When a notification endpoint last accepted events, as a Unix time; 0 before the first.",
		[]string{"endpoint"}, nil)
)

// Notifications reports the notification endpoints' counts, read from
// stats at each scrape: the notifier keeps them, so nothing is counted
// twice and a process without endpoints has no series.
func (m *Metrics) Notifications(stats func() []NotificationStats) {
	if m == nil {
		return
	}
	m.registry.MustRegister(notificationCollector(stats))
}

type notificationCollector func() []NotificationStats

func (c notificationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- notificationEvents
	ch <- notificationQueued
	ch <- notificationSuccess
}

func (c notificationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c() {
		for _, o := range []struct {
			outcome string
			n       int64
		}{{"delivered", s.Delivered}, {"failed", s.Failed}, {"dropped", s.Dropped}} {
			ch <- prometheus.MustNewConstMetric(notificationEvents, prometheus.CounterValue, float64(o.n), s.Endpoint, o.outcome)
		}
		ch <- prometheus.MustNewConstMetric(notificationQueued, prometheus.GaugeValue, float64(s.Queued), s.Endpoint)
		var last float64
		if !s.LastSuccess.IsZero() {
			last = float64(s.LastSuccess.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(notificationSuccess, prometheus.GaugeValue, last, s.Endpoint)
	}
}
