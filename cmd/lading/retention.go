package main

import (
	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/metrics"
	"github.com/lading-registry/lading/registry"
)

// retentionOptions are the configured retention rules, validated with the
// configuration, as the registry applies them.
func retentionOptions(c config.Retention) registry.RetentionOptions {
	opts := registry.RetentionOptions{DryRun: c.DryRun}
	for _, r := range c.Rules {
		repos, _ := glob.Compile(r.Repository)
		tags, _ := glob.ParseTags(r.Tags)
		opts.Rules = append(opts.Rules, registry.RetentionRule{Repositories: repos,
			Prune: registry.PruneOptions{Tags: tags, Keep: r.Keep, OlderThan: r.OlderThan}})
	}
	return opts
}

// retained records each application of the rules in m.
func retained(m *metrics.Retention) func(registry.RetentionReport, error) {
	return func(rep registry.RetentionReport, err error) {
		removed := rep.Removed
		if rep.DryRun {
			removed = 0
		}
		m.Run(removed, err != nil)
	}
}
