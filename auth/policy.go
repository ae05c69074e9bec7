package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/internal/yamldoc"
)

// Policy says who may do what on which repositories. It is read from YAML:
//
//	# Users are those of the htpasswd file, or a token's subject.
//	admins:              # every action on every repository, and the catalog
//	  users: [alice]
//	  groups: [ops]
//	groups:
//	  ops: [alice, oscar]
//	  devs: [bob, carol]
//	rules:               # a request is allowed when any rule allows it
//	  - repositories: ["library/**", "public/*"]
//	    anonymous: [pull]    # also without credentials
//	  - repositories: ["team/**"]
//	    groups: [devs]
//	    users: [dave]
//	    actions: [pull, push]
//	  - repositories: ["**"]
//	    users: ["*"]         # "*" is any authenticated user
//	    actions: [pull]
//
// Actions are pull, push, delete and "*" (all three). What anonymous may do,
// every user may do too. Repository patterns are matched per "/"-separated
// component with path.Match ("*", "?", "[a-z]" within one component), and a
// component "**" matches any number of components, including none: "team/**"
// matches "team", "team/app" and "team/app/web".
//
// The catalog is open to every authenticated user, and to anonymous callers
// when some rule grants anonymous access; either way it lists only the
// repositories the caller may pull.
//
// A nil *Policy is DefaultPolicy.
type Policy struct {
	file *watchedFile[*policy]
}

type policy struct {
	admins         []string
	adminGroups    []string
	memberOf       map[string][]string
	rules          []rule
	anonymousRules bool
}

type rule struct {
	globs     []glob.Glob
	users     []string
	groups    []string
	actions   []string
	anonymous []string
}

type policyYAML struct {
	Admins struct {
		Users  []string `yaml:"users"`
		Groups []string `yaml:"groups"`
	} `yaml:"admins"`
	Groups map[string][]string `yaml:"groups"`
	Rules  []struct {
		Repositories []string `yaml:"repositories"`
		Users        []string `yaml:"users"`
		Groups       []string `yaml:"groups"`
		Actions      []string `yaml:"actions"`
		Anonymous    []string `yaml:"anonymous"`
	} `yaml:"rules"`
}

// DefaultPolicy is the policy without a file: every authenticated user may
// do everything, anonymous callers nothing.
var DefaultPolicy = mustParsePolicy(`
rules:
  - repositories: ["**"]
    users: ["*"]
    actions: ["*"]
`)

func mustParsePolicy(yaml string) *Policy {
	p, err := ParsePolicy([]byte(yaml))
	if err != nil {
		panic(err)
	}
	return p
}

// LoadPolicy reads a policy file, re-read when it changes.
func LoadPolicy(path string, logger *slog.Logger) (*Policy, error) {
	f, err := watchFile(path, parsePolicy, orDefault(logger))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return &Policy{file: f}, nil
}

// ParsePolicy builds a Policy from YAML content.
func ParsePolicy(data []byte) (*Policy, error) {
	p, err := parsePolicy(data)
	if err != nil {
		return nil, err
	}
	return &Policy{file: staticFile(p)}, nil
}

func parsePolicy(data []byte) (*policy, error) {
	var y policyYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt key must not silently open or close access
	if err := dec.Decode(&y); err != nil && err != io.EOF {
		return nil, readableYAMLError(err)
	}
	if err := yamldoc.NoMore(dec); err != nil {
		return nil, err
	}
	if len(y.Admins.Users)+len(y.Admins.Groups)+len(y.Rules) == 0 {
		// Most likely a file not written yet, or mounted empty: it would
		// lock everyone out without a word.
		return nil, errors.New("grants nothing to anyone: no admins and no rules (an empty file?)")
	}
	p := &policy{admins: y.Admins.Users, adminGroups: y.Admins.Groups, memberOf: map[string][]string{}}
	for g, users := range y.Groups {
		for _, u := range users {
			p.memberOf[u] = append(p.memberOf[u], g)
		}
	}
	for _, g := range y.Admins.Groups {
		if _, ok := y.Groups[g]; !ok {
			return nil, fmt.Errorf("admins: unknown group %q", g)
		}
	}
	for i, yr := range y.Rules {
		r := rule{users: yr.Users, groups: yr.Groups}
		if len(yr.Repositories) == 0 {
			return nil, fmt.Errorf("rule %d: no repositories", i+1)
		}
		for _, pattern := range yr.Repositories {
			g, err := glob.Compile(pattern)
			if err != nil {
				return nil, fmt.Errorf("rule %d: %w", i+1, err)
			}
			r.globs = append(r.globs, g)
		}
		for _, g := range yr.Groups {
			if _, ok := y.Groups[g]; !ok {
				return nil, fmt.Errorf("rule %d: unknown group %q", i+1, g)
			}
		}
		var err error
		if r.actions, err = checkActions(yr.Actions); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		if r.anonymous, err = checkActions(yr.Anonymous); err != nil {
			return nil, fmt.Errorf("rule %d: anonymous: %w", i+1, err)
		}
		if len(r.actions) > 0 && len(r.users)+len(r.groups) == 0 {
			return nil, fmt.Errorf("rule %d: actions for no users or groups", i+1)
		}
		p.anonymousRules = p.anonymousRules || len(r.anonymous) > 0
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// checkActions validates actions and expands "*".
func checkActions(actions []string) ([]string, error) {
	var out []string
	for _, a := range actions {
		switch a {
		case ActionAll:
			out = append(out, repositoryActions...)
		case ActionPull, ActionPush, ActionDelete:
			out = append(out, a)
		default:
			return nil, fmt.Errorf("unknown action %q (want pull, push, delete or *)", a)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Allows reports whether user ("" for anonymous) may do every action of a.
func (p *Policy) Allows(user string, a Access) bool {
	allowed := p.actions(user, a.Type, a.Name)
	for _, act := range a.Actions {
		if act == ActionAll {
			if !slices.Contains(allowed, ActionAll) && !allAllowed(allowed) {
				return false
			}
		} else if !slices.Contains(allowed, act) {
			return false
		}
	}
	return true
}

// Grant narrows want to what user may do; "*" is granted as the actions it
// stands for that are allowed. It never fails: what is not allowed is left out.
func (p *Policy) Grant(user string, want Access) Access {
	allowed := p.actions(user, want.Type, want.Name)
	got := Access{Type: want.Type, Name: want.Name, Actions: []string{}}
	if want.Type == TypeRegistry {
		if len(allowed) > 0 && slices.Contains(want.Actions, ActionAll) {
			got.Actions = []string{ActionAll}
		}
		return got
	}
	for _, act := range allowed {
		if want.Allows(act) {
			got.Actions = append(got.Actions, act)
		}
	}
	return got
}

// PullsNothing reports whether no rule lets user ("" for anonymous) pull
// any repository.
func (p *Policy) PullsNothing(user string) bool {
	if p == nil {
		p = DefaultPolicy
	}
	pol := p.file.get()
	if user != "" && pol.isAdmin(user) {
		return false
	}
	for _, r := range pol.rules {
		if slices.Contains(r.anonymous, ActionPull) || user != "" && pol.applies(r, user) && slices.Contains(r.actions, ActionPull) {
			return false
		}
	}
	return true
}

// Filter keeps the repositories user may pull.
func (p *Policy) Filter(user string, repos []string) []string {
	out := make([]string, 0, len(repos))
	for _, r := range repos {
		if slices.Contains(p.actions(user, TypeRepository, r), ActionPull) {
			out = append(out, r)
		}
	}
	return out
}

func allAllowed(allowed []string) bool {
	for _, a := range repositoryActions {
		if !slices.Contains(allowed, a) {
			return false
		}
	}
	return true
}

// actions lists what user may do on the resource, sorted; for the catalog
// it is ["*"] or nothing.
func (p *Policy) actions(user, typ, name string) []string {
	authenticated := user != ""
	if p == nil {
		p = DefaultPolicy
	}
	pol := p.file.get()
	if authenticated && pol.isAdmin(user) {
		if typ == TypeRegistry {
			return []string{ActionAll}
		}
		return repositoryActions
	}
	switch typ {
	case TypeRegistry:
		if name == "catalog" && (authenticated || pol.anonymousRules) {
			return []string{ActionAll}
		}
		return nil
	case TypeRepository:
	default:
		return nil
	}
	components := strings.Split(name, "/")
	var out []string
	for _, r := range pol.rules {
		if !slices.ContainsFunc(r.globs, func(g glob.Glob) bool { return g.Match(components) }) {
			continue
		}
		out = append(out, r.anonymous...)
		if authenticated && pol.applies(r, user) {
			out = append(out, r.actions...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (p *policy) isAdmin(user string) bool {
	return slices.Contains(p.admins, user) ||
		slices.ContainsFunc(p.memberOf[user], func(g string) bool { return slices.Contains(p.adminGroups, g) })
}

func (p *policy) applies(r rule, user string) bool {
	return slices.Contains(r.users, user) || slices.Contains(r.users, "*") ||
		slices.ContainsFunc(r.groups, func(g string) bool { return slices.Contains(p.memberOf[user], g) })
}

// unknownField is how yaml.v3 reports a key the policy does not have.
var unknownField = regexp.MustCompile(`field (\S+) not found in type .*`)

// readableYAMLError names an unknown key as one, where yaml.v3 names the
// Go type it was decoded into.
func readableYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	lines := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		lines[i] = unknownField.ReplaceAllString(e, `unknown key "$1"`)
	}
	return errors.New(strings.Join(lines, "; "))
}
