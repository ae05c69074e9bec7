package config

import (
	"cmp"
	"fmt"
	"time"

	"github.com/lading-registry/lading/internal/glob"
)

// Retention configures the tag retention rules lading serve applies.
type Retention struct {
	Interval time.Duration   `yaml:"interval" doc:"Time from the end of one application of the rules (any replica's) to the next, at least 1m; 0 turns them off."`
	DryRun   bool            `yaml:"dryrun" doc:"Log what the rules would remove, and remove nothing."`
	Rules    []RetentionRule `yaml:"rules" doc:"The rules, a list; a repository is pruned by the first rule that matches it. Each item takes repository (the access policy's patterns: team/*, ci/**, which matches ci too), tags (comma-separated path.Match patterns; empty: every tag), keep (the newest matched tags kept by count) and olderthan (tags pushed more recently kept), keep or olderthan or both. In the environment or --set, the whole list as YAML: [{repository: \"ci/**\", tags: \"pr-*\", keep: 10, olderthan: 30d}]."`
}

// RetentionRule is one rule, with lading prune's meaning: among a
// repository's tags matching Tags, those not among the Keep newest and
// pushed longer than OlderThan ago go.
type RetentionRule struct {
	Repository string        `yaml:"repository" doc:"The repositories the rule covers, as the access policy writes patterns."`
	Tags       string        `yaml:"tags" doc:"Comma-separated tag patterns the rule covers; empty: every tag."`
	Keep       int           `yaml:"keep" doc:"How many of the newest matched tags stay, whatever their age."`
	OlderThan  time.Duration `yaml:"olderthan" doc:"Tags pushed more recently than this stay."`
}

// minRetentionInterval keeps a mistyped interval (1s for 1d) from pruning
// without a pause: each run lists every matched repository's tags.
const minRetentionInterval = time.Minute

// repositoryPattern checks a rule's repository pattern, which must be set,
// and reports whether it is sound.
func (v *validator) repositoryPattern(key, pattern string) bool {
	if pattern == "" {
		v.fail(key, "must be set (a pattern; ** for every repository)")
		return false
	}
	if _, err := glob.Compile(pattern); err != nil {
		v.fail(key, "%v", err)
		return false
	}
	return true
}

func (v *validator) retention(c *Config) {
	r := &c.Retention
	switch {
	case r.Interval < 0:
		v.fail("retention.interval", "%s must be 0 (off) or more", formatDuration(r.Interval))
	case r.Interval > 0 && r.Interval < minRetentionInterval:
		v.fail("retention.interval", "%s must be 0 (off) or at least %s", formatDuration(r.Interval), formatDuration(minRetentionInterval))
	case r.Interval > 0 && c.ReadOnly:
		v.fail("retention.interval", "excludes readonly: a read-only server removes no tags")
	case r.Interval > 0 && c.Proxy.RemoteURL != "":
		v.fail("retention.interval", "excludes proxy.remoteurl: a mirror's tags follow the upstream's, and it deletes none")
	case r.Interval > 0 && len(r.Rules) == 0:
		v.fail("retention.rules", "must hold a rule when retention.interval is set")
	}
	for i := range r.Rules {
		rule := &r.Rules[i]
		at := func(k string) string { return fmt.Sprintf("retention.rules[%d].%s", i, k) }
		v.repositoryPattern(at("repository"), rule.Repository)
		if _, err := glob.ParseTags(rule.Tags); err != nil {
			v.fail(at("tags"), "%v", err)
		}
		if rule.Keep < 0 {
			v.fail(at("keep"), "%d must be 0 or more", rule.Keep)
		}
		v.notNegative(at("olderthan"), rule.OlderThan)
		if rule.Keep == 0 && rule.OlderThan == 0 {
			// Usually left out, so pointed at by the rule's other keys.
			source := cmp.Or(v.origin[at("keep")], v.origin[at("olderthan")], v.origin[at("repository")], v.origin["retention.rules"])
			v.errs = append(v.errs, &Error{Key: at("keep"), Source: source,
				Msg: fmt.Sprintf("must be 1 or more, or %s more than 0, or both: a rule with neither would remove every tag it matches", at("olderthan"))})
		}
	}
}
