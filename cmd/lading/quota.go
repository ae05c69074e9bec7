package main

import (
	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/metrics"
	"github.com/lading-registry/lading/registry"
)

// quotaOptions sets the configured quotas, validated with the
// configuration, in opts, reporting to m.
func quotaOptions(quotas []config.Quota, m *metrics.Quotas, opts *registry.Options) {
	for _, q := range quotas {
		repos, _ := glob.Compile(q.Repository)
		opts.Quotas = append(opts.Quotas, registry.QuotaRule{Pattern: q.Repository, Repositories: repos, Limit: int64(q.Limit), Each: q.Each})
		m.Rule(q.Repository, int64(q.Limit), q.Each)
	}
	opts.QuotaUsed, opts.QuotaRefused = m.Used, m.Refused
}
