package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	storedBlobsDesc = prometheus.NewDesc(namespace+"_gc_stored_blobs",
		"Blobs the last completed garbage collection, any replica's, left stored, each once however many repositories link it: as this process last read it (at its start, at each look of its collection schedule, after its own collections). Absent before the first collection.", nil, nil)
	storedBytesDesc = prometheus.NewDesc(namespace+"_gc_stored_bytes",
		"Bytes of those blobs: the store's size, as lading du counts it.", nil, nil)
	storedAtDesc = prometheus.NewDesc(namespace+"_gc_stored_timestamp_seconds",
		"When that collection ended, as a Unix time.", nil, nil)
)

// stored is what the last collection left stored, once known.
type stored struct {
	mu           sync.Mutex
	known        bool
	blobs, bytes int64
	at           time.Time
}

func (s *stored) Describe(ch chan<- *prometheus.Desc) {
	ch <- storedBlobsDesc
	ch <- storedBytesDesc
	ch <- storedAtDesc
}

func (s *stored) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		return // absent rather than 0, which reads as an empty store
	}
	ch <- prometheus.MustNewConstMetric(storedBlobsDesc, prometheus.GaugeValue, float64(s.blobs))
	ch <- prometheus.MustNewConstMetric(storedBytesDesc, prometheus.GaugeValue, float64(s.bytes))
	ch <- prometheus.MustNewConstMetric(storedAtDesc, prometheus.GaugeValue, float64(s.at.UnixNano())/1e9)
}

// GCStored records what the last completed collection left stored, and
// when it ended; an older reading than the one held is ignored.
func (m *Metrics) GCStored(blobs, bytes int64, at time.Time) {
	if m == nil {
		return
	}
	s := m.stored
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known && at.Before(s.at) {
		return
	}
	s.known, s.blobs, s.bytes, s.at = true, blobs, bytes, at
}
