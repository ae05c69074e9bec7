package config

import (
	"testing"
	"time"
)

const retentionYAML = `retention:
  interval: 24h
  dryrun: true
  rules:
    - repository: "ci/**"
      tags: "pr-*, build-*"
      keep: 10
      olderthan: 720h
    - repository: "team/*"
      keep: 50
`

func TestRetentionLoads(t *testing.T) {
	c, err := Parse("lading.yaml", []byte(retentionYAML))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Retention
	if r.Interval != 24*time.Hour || !r.DryRun || len(r.Rules) != 2 {
		t.Fatalf("%+v", r)
	}
	if got := r.Rules[0]; got != (RetentionRule{Repository: "ci/**", Tags: "pr-*, build-*", Keep: 10, OlderThan: 720 * time.Hour}) {
		t.Errorf("first rule: %+v", got)
	}
	if got := r.Rules[1]; got != (RetentionRule{Repository: "team/*", Keep: 50}) {
		t.Errorf("second rule: %+v", got)
	}
	// The environment replaces the list, written whole in YAML.
	c, err = Load(writeFile(t, retentionYAML), []string{`LADING_RETENTION_RULES=[{repository: "**", olderthan: 2d}]`, "LADING_RETENTION_INTERVAL=1h"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Retention; r.Interval != time.Hour || len(r.Rules) != 1 || r.Rules[0] != (RetentionRule{Repository: "**", OlderThan: 48 * time.Hour}) {
		t.Errorf("from the environment: %+v", r)
	}
	back, err := Parse("string", []byte(c.String()))
	if err != nil || len(back.Retention.Rules) != 1 || back.Retention.Rules[0] != c.Retention.Rules[0] {
		t.Errorf("String round trip: %+v, %v", back, err)
	}
	// Rules without an interval are kept, and applied by nothing.
	if _, err := Parse("lading.yaml", []byte("retention:\n  rules:\n    - {repository: a, keep: 1}\n")); err != nil {
		t.Errorf("rules with the interval at 0: %v", err)
	}
}

func TestBadRetention(t *testing.T) {
	rules := "  rules:\n    - {repository: a, keep: 1}\n"
	refused(t, []badConfig{
		{name: "neither keep nor olderthan", yaml: "retention:\n  interval: 24h\n  rules:\n    - repository: ci/**\n      tags: pr-*\n",
			want: []string{"retention.rules[0].keep: must be 1 or more, or retention.rules[0].olderthan more than 0", "would remove every tag it matches", "line 4"}},
		{name: "both at 0", yaml: "retention:\n  interval: 24h\n  rules:\n    - {repository: a, keep: 0, olderthan: 0s}\n",
			want: []string{"retention.rules[0].keep: must be 1 or more"}},
		{name: "negative keep", yaml: "retention:\n  rules:\n    - {repository: a, keep: -1, olderthan: 1h}\n",
			want: []string{"retention.rules[0].keep: -1 must be 0 or more"}},
		{name: "negative olderthan", yaml: "retention:\n  rules:\n    - {repository: a, keep: 1}\n    - {repository: b, olderthan: -1h}\n",
			want: []string{"retention.rules[1].olderthan: -1h must be 0 or more", "line 4"}},
		{name: "no repository", yaml: "retention:\n  rules:\n    - {keep: 1}\n",
			want: []string{"retention.rules[0].repository: must be set"}},
		{name: "bad repository", yaml: "retention:\n  rules:\n    - {repository: Team/*, keep: 1}\n",
			want: []string{"retention.rules[0].repository:", "can never match"}},
		{name: "empty component", env: []string{"LADING_RETENTION_RULES=[{repository: team//app, keep: 1}]"},
			want: []string{"retention.rules[0].repository:", "empty component", "env LADING_RETENTION_RULES"}},
		{name: "bad tags", yaml: "retention:\n  rules:\n    - {repository: a, tags: \"pr-*, a/b\", keep: 1}\n",
			want: []string{`retention.rules[0].tags: tag pattern "a/b": a tag holds no / : or ,`}},
		{name: "bad tag syntax", yaml: "retention:\n  rules:\n    - {repository: a, tags: \"[\", keep: 1}\n",
			want: []string{`retention.rules[0].tags: tag pattern "[": syntax error in pattern`}},
		{name: "interval too short", yaml: "retention:\n  interval: 30s\n" + rules,
			want: []string{"retention.interval: 30s must be 0 (off) or at least 1m", "line 2"}},
		{name: "negative interval", env: []string{"LADING_RETENTION_INTERVAL=-1h"},
			want: []string{"retention.interval: -1h must be 0 (off) or more"}},
		{name: "read-only", yaml: "readonly: true\nretention:\n  interval: 1h\n" + rules,
			want: []string{"retention.interval: excludes readonly: a read-only server removes no tags"}},
		{name: "mirror", yaml: "proxy:\n  remoteurl: https://registry-1.docker.io\nretention:\n  interval: 1h\n" + rules,
			want: []string{"retention.interval: excludes proxy.remoteurl: a mirror's tags follow the upstream's"}},
		{name: "no rules", yaml: "retention:\n  interval: 1h\n",
			want: []string{"retention.rules: must hold a rule when retention.interval is set"}},
		{name: "unknown key", yaml: "retention:\n  rules:\n    - {repository: a, keep: 1, older-than: 1h}\n",
			want: []string{"retention.rules[0].older-than: unknown key; allowed in retention.rules[0]: repository, tags, keep, olderthan"}},
		{name: "env not yaml", env: []string{"LADING_RETENTION_RULES=[{repository: a"},
			want: []string{"retention.rules: is not a YAML list", "[{repository: \"ci/**\", keep: 10}]"}},
	})
}

// Every list setting's message for a value that is no list shows how to
// write one.
func TestListExamples(t *testing.T) {
	keys, _ := schema()
	for _, k := range keys {
		if _, ok := listExamples[k.Path]; k.isList() && !ok {
			t.Errorf("%s has no example in listExamples", k.Path)
		}
	}
}
