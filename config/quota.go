package config

import (
	"cmp"
	"fmt"
)

// Quota caps the bytes the repositories a pattern matches link.
type Quota struct {
	Repository string `yaml:"repository" doc:"The repositories the rule takes, as the access policy writes patterns."`
	Limit      Bytes  `yaml:"limit" doc:"The most bytes they may link, more than 0."`
	Each       bool   `yaml:"each" doc:"Every repository the rule takes has the limit to itself; otherwise it caps their total."`
}

func (v *validator) quotas(c *Config) {
	switch {
	case len(c.Quotas) == 0:
		return
	case c.ReadOnly:
		v.fail("quotas", "excludes readonly: a read-only server takes no pushes")
	case c.Proxy.RemoteURL != "":
		v.fail("quotas", "excludes proxy.remoteurl: a mirror takes no pushes, and holds what its pulls fetch")
	}
	first := map[string]int{}
	for i, q := range c.Quotas {
		at := func(k string) string { return fmt.Sprintf("quotas[%d].%s", i, k) }
		if j, repeated := first[q.Repository]; repeated {
			// It would govern nothing, and its metrics take the first's name.
			v.fail(at("repository"), "repeats quotas[%d].repository: that rule takes every repository this one would", j)
		} else if v.repositoryPattern(at("repository"), q.Repository) {
			first[q.Repository] = i
		}
		if q.Limit <= 0 {
			// Usually left out, so pointed at by the rule's repository.
			source := cmp.Or(v.origin[at("limit")], v.origin[at("repository")], v.origin["quotas"])
			v.errs = append(v.errs, &Error{Key: at("limit"), Source: source, Msg: "must be more than 0 (a size: 500GiB)"})
		}
	}
}
