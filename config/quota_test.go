package config

import (
	"strings"
	"testing"
)

const quotasYAML = `quotas:
  - repository: "team-a/**"
    limit: 500GiB
  - repository: "**"
    limit: 20GiB
    each: true
`

func TestQuotasLoad(t *testing.T) {
	c, err := Parse("lading.yaml", []byte(quotasYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := []Quota{{Repository: "team-a/**", Limit: 500 << 30}, {Repository: "**", Limit: 20 << 30, Each: true}}
	if len(c.Quotas) != 2 || c.Quotas[0] != want[0] || c.Quotas[1] != want[1] {
		t.Fatalf("%+v, want %+v", c.Quotas, want)
	}
	// The environment replaces the list, written whole in YAML.
	c, err = Load(writeFile(t, quotasYAML), []string{`LADING_QUOTAS=[{repository: "ci/*", limit: 1MiB, each: true}]`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Quotas) != 1 || c.Quotas[0] != (Quota{Repository: "ci/*", Limit: 1 << 20, Each: true}) {
		t.Errorf("from the environment: %+v", c.Quotas)
	}
	back, err := Parse("string", []byte(c.String()))
	if err != nil || len(back.Quotas) != 1 || back.Quotas[0] != c.Quotas[0] {
		t.Errorf("String round trip: %+v, %v", back, err)
	}
}

func TestBadQuotas(t *testing.T) {
	rule := "quotas:\n  - {repository: a, limit: 1GiB}\n"
	refused(t, []badConfig{
		{name: "no limit", yaml: "quotas:\n  - repository: team/**\n",
			want: []string{"quotas[0].limit: must be more than 0", "line 2"}},
		{name: "zero limit", yaml: "quotas:\n  - {repository: a, limit: 1GiB}\n  - {repository: b, limit: 0}\n",
			want: []string{"quotas[1].limit: must be more than 0", "line 3"}},
		{name: "negative limit", env: []string{"LADING_QUOTAS=[{repository: a, limit: -1}]"},
			want: []string{"quotas[0].limit:", "is not a size"}},
		{name: "limit not a size", yaml: "quotas:\n  - {repository: a, limit: 5GB}\n",
			want: []string{`quotas[0].limit: "5GB" is not a size`}},
		{name: "no repository", yaml: "quotas:\n  - {limit: 1GiB}\n",
			want: []string{"quotas[0].repository: must be set"}},
		// The pattern's other faults are retention's (repositoryPattern).
		{name: "empty component", env: []string{"LADING_QUOTAS=[{repository: team//app, limit: 1GiB}]"},
			want: []string{"quotas[0].repository:", "empty component", "env LADING_QUOTAS"}},
		{name: "repeated repository", yaml: rule + "  - {repository: b, limit: 1GiB}\n  - {repository: a, limit: 2GiB, each: true}\n",
			want: []string{"quotas[2].repository: repeats quotas[0].repository", "line 4"}},
		{name: "read-only", yaml: "readonly: true\n" + rule,
			want: []string{"quotas: excludes readonly: a read-only server takes no pushes"}},
		{name: "read-only by flag's variable", yaml: rule, env: []string{"LADING_READONLY=true"},
			want: []string{"quotas: excludes readonly"}},
		{name: "mirror", yaml: "proxy:\n  remoteurl: https://registry-1.docker.io\n" + rule,
			want: []string{"quotas: excludes proxy.remoteurl: a mirror takes no pushes"}},
		{name: "unknown key", yaml: "quotas:\n  - {repository: a, limit: 1GiB, per: repository}\n",
			want: []string{"quotas[0].per: unknown key; allowed in quotas[0]: repository, limit, each"}},
		{name: "env not yaml", env: []string{"LADING_QUOTAS=[{repository: a"},
			want: []string{"quotas: is not a YAML list", `[{repository: "team-a/**", limit: 500GiB}]`}},
	})
}

// A limit that does not read is reported as such, not also as 0.
func TestUnreadLimitReportedOnce(t *testing.T) {
	_, err := Parse("lading.yaml", []byte("quotas:\n  - {repository: a, limit: 5GB}\n"))
	if err == nil || strings.Count(err.Error(), "quotas[0].limit") != 1 {
		t.Fatalf("%v, want one error naming quotas[0].limit", err)
	}
}
