package metrics

import (
	"testing"
	"time"
)

func TestNotificationsReadAtScrape(t *testing.T) {
	m := New()
	stats := []NotificationStats{{Endpoint: "scan", Delivered: 5, Failed: 1, Dropped: 2, Queued: 3, LastSuccess: time.Unix(1700000000, 0)}, {Endpoint: "audit"}}
	m.Notifications(func() []NotificationStats { return stats })
	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lading_notifications_events_total", []string{"endpoint", "scan", "outcome", "delivered"}, 5},
		{"lading_notifications_events_total", []string{"endpoint", "scan", "outcome", "failed"}, 1},
		{"lading_notifications_events_total", []string{"endpoint", "scan", "outcome", "dropped"}, 2},
		{"lading_notifications_events_total", []string{"endpoint", "audit", "outcome", "dropped"}, 0},
		{"lading_notifications_queued_events", []string{"endpoint", "scan"}, 3},
		{"lading_notifications_last_success_timestamp_seconds", []string{"endpoint", "scan"}, 1700000000},
		{"lading_notifications_last_success_timestamp_seconds", []string{"endpoint", "audit"}, 0},
	} {
		if got := value(f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	stats[0].Delivered = 9
	if got := value(scrape(t, m), "lading_notifications_events_total", "endpoint", "scan", "outcome", "delivered"); got != 9 {
		t.Errorf("second scrape: %v, want 9", got)
	}
}
