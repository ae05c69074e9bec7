package metrics

import "testing"

func TestQuotas(t *testing.T) {
	m := New()
	q := m.Quotas()
	q.Rule("team-a/**", 500<<30, false)
	q.Rule("**", 20<<30, true)
	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lading_quota_limit_bytes", []string{"rule", "team-a/**"}, 500 << 30},
		{"lading_quota_limit_bytes", []string{"rule", "**"}, -1}, // each: no total to cap
		{"lading_quota_refusals_total", []string{"rule", "team-a/**"}, 0},
		{"lading_quota_refusals_total", []string{"rule", "**"}, 0},
		{"lading_quota_used_bytes", []string{"rule", "team-a/**"}, -1}, // not counted yet
	} {
		if got := value(f, c.name, c.labels...); got != c.want {
			t.Errorf("before a count: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	q.Used("team-a/**", 1234)
	q.Used("team-a/**", 1000)
	q.Refused("**")
	q.Refused("**")
	f = scrape(t, m)
	if got := value(f, "lading_quota_used_bytes", "rule", "team-a/**"); got != 1000 {
		t.Errorf("used = %v, want the last count, 1000", got)
	}
	if got := value(f, "lading_quota_refusals_total", "rule", "**"); got != 2 {
		t.Errorf("refusals = %v, want 2", got)
	}
	var none *Quotas
	none.Rule("a", 1, false)
	none.Used("a", 1)
	none.Refused("a")
	if (*Metrics)(nil).Quotas() != nil {
		t.Error("nil metrics gave quota metrics")
	}
}
