package metrics

import (
	"testing"
	"time"
)

func TestRetentionRuns(t *testing.T) {
	m := New()
	r := m.Retention()
	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"lading_retention_runs_total", []string{"outcome", "failed"}},
		{"lading_retention_tags_removed_total", nil},
		{"lading_retention_last_success_timestamp_seconds", nil},
		{"lading_maintenance_failures_total", []string{"task", "retention"}},
	} {
		if got := value(f, c.name, c.labels...); got != 0 {
			t.Errorf("%s%v before a run = %v, want a series at 0", c.name, c.labels, got)
		}
	}
	before := time.Now()
	r.Run(3, false)
	r.Run(2, true)
	r.Run(0, false)
	f = scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lading_retention_runs_total", []string{"outcome", "ok"}, 2},
		{"lading_retention_runs_total", []string{"outcome", "failed"}, 1},
		{"lading_retention_tags_removed_total", nil, 5},
	} {
		if got := value(f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(f, "lading_retention_last_success_timestamp_seconds"); got < float64(before.Unix()) || got > float64(time.Now().Unix()+1) {
		t.Errorf("last success at %v, want about %v", got, before.Unix())
	}
	var none *Retention
	none.Run(1, false)
	if (*Metrics)(nil).Retention() != nil {
		t.Error("nil metrics gave retention metrics")
	}
}
