package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Resource types of the Docker token scope grammar.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
)

// Actions on a repository. ActionAll in a grant stands for every action.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// repositoryActions are the concrete actions ActionAll expands to.
var repositoryActions = []string{ActionPull, ActionPush, ActionDelete}

// Access is one resource and the actions wanted (or granted) on it, the unit
// of both a route's needs and a token's "access" claim.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Catalog is what listing /v2/_catalog needs.
var Catalog = Access{Type: TypeRegistry, Name: "catalog", Actions: []string{ActionAll}}

// Repository is the access to repository name for the given actions.
func Repository(name string, actions ...string) Access {
	return Access{Type: TypeRepository, Name: name, Actions: actions}
}

// ParseScope parses one Docker token scope, "type:name:actions". The type
// ends at the first colon and the actions start after the last, so names
// holding colons ("localhost:5000/a/b") survive. A resource class such as
// "repository(plugin)" is reduced to its type.
func ParseScope(s string) (Access, error) {
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return Access{}, fmt.Errorf("scope %q: want type:name:actions", s)
	}
	typ, name, actions := s[:first], s[first+1:last], s[last+1:]
	if i := strings.IndexByte(typ, '('); i >= 0 && strings.HasSuffix(typ, ")") {
		typ = typ[:i]
	}
	if typ == "" || name == "" {
		return Access{}, fmt.Errorf("scope %q: empty type or name", s)
	}
	if len(name) > maxScopeName {
		return Access{}, fmt.Errorf("scope name of %d bytes: the limit is %d", len(name), maxScopeName)
	}
	a := Access{Type: typ, Name: name}
	for act := range strings.SplitSeq(actions, ",") {
		if act = strings.TrimSpace(act); act != "" && !slices.Contains(a.Actions, act) {
			if len(a.Actions) == maxScopeActions {
				return Access{}, fmt.Errorf("scope %q: more than %d actions", s, maxScopeActions)
			}
			a.Actions = append(a.Actions, act)
		}
	}
	return a, nil
}

// maxScopeActions and maxScopes bound what one token request may ask for:
// anyone may send one, and each action and scope costs a look at the
// policy. Real clients ask for a few of each.
const (
	maxScopeActions = 16
	maxScopes       = 256
	// maxScopeName is twice the registry's limit on repository names:
	// room for a registry host before one, as in "localhost:5000/a/b".
	maxScopeName = 512
)

// ParseScopes parses scopes given as repeated parameters, each of which may
// itself hold several scopes separated by spaces (the OAuth2 form).
func ParseScopes(params []string) ([]Access, error) {
	var out []Access
	for _, p := range params {
		for s := range strings.FieldsSeq(p) {
			if len(out) == maxScopes {
				return nil, fmt.Errorf("more than %d scopes", maxScopes)
			}
			a, err := ParseScope(s)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// String formats a as a Docker token scope.
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// FormatScopes joins accesses the way the scope parameter of a Bearer
// challenge lists them.
func FormatScopes(as []Access) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// Allows reports whether a grants action, directly or through ActionAll.
func (a Access) Allows(action string) bool {
	return slices.Contains(a.Actions, action) || slices.Contains(a.Actions, ActionAll)
}

// covers reports whether the grants in granted include every action of need.
func covers(granted []Access, need Access) bool {
	for _, act := range need.Actions {
		if !slices.ContainsFunc(granted, func(g Access) bool {
			return g.Type == need.Type && g.Name == need.Name && g.Allows(act)
		}) {
			return false
		}
	}
	return true
}
