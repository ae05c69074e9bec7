package auth

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestPolicyAllows(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	for _, tc := range []struct {
		user string
		a    Access
		want bool
	}{
		{"", Repository("public/busybox", "pull"), true},
		{"", Repository("public/x/y", "pull"), true},
		{"", Repository("public/busybox", "push"), false},
		{"", Repository("team/app", "pull"), false},
		{"mallory", Repository("public/busybox", "pull"), true}, // what anonymous may, users may
		{"mallory", Repository("team/app", "pull"), false},
		{"bob", Repository("team/app", "pull", "push"), true},
		{"bob", Repository("team/app", "delete"), false},
		{"bob", Repository("team/app/scratch", "delete"), true},
		{"bob", Repository("team/app", "*"), false},
		{"carol", Repository("carol/x", "*"), true},
		{"carol", Repository("carol/x", "delete"), true},
		{"carol", Repository("carol/x/y", "pull"), false},
		{"alice", Repository("anything/at/all", "pull", "push", "delete"), true},
		{"alice", Repository("x", "*"), true},
		{"alice", Catalog, true},
		{"mallory", Catalog, true},
		{"", Catalog, true}, // a rule grants anonymous access
		{"bob", Access{Type: "plugin", Name: "x", Actions: []string{"pull"}}, false},
	} {
		if got := p.Allows(tc.user, tc.a); got != tc.want {
			t.Errorf("Allows(%q, %v) = %v, want %v", tc.user, tc.a, got, tc.want)
		}
	}
}

func TestPolicyGrantNarrows(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	for _, tc := range []struct {
		user, want string
		scope      string
	}{
		{"bob", "repository:team/app:pull,push", "repository:team/app:pull,push,delete"},
		{"bob", "repository:team/app:pull,push", "repository:team/app:*"},
		{"", "repository:public/a:pull", "repository:public/a:pull,push"},
		{"", "repository:team/app:", "repository:team/app:pull"},
		{"alice", "repository:x:delete,pull,push", "repository:x:*"},
		{"mallory", "registry:catalog:*", "registry:catalog:*"},
	} {
		want, _ := ParseScope(tc.scope)
		got := p.Grant(tc.user, want)
		gotSorted := got
		slices.Sort(gotSorted.Actions)
		if gotSorted.String() != tc.want {
			t.Errorf("Grant(%q, %s) = %s, want %s", tc.user, tc.scope, gotSorted, tc.want)
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	var p *Policy
	if !p.Allows("anyone", Repository("a/b", "*")) || !p.Allows("anyone", Catalog) {
		t.Error("nil policy must let users do everything")
	}
	if p.Allows("", Repository("a", "pull")) || p.Allows("", Catalog) {
		t.Error("nil policy must let anonymous do nothing")
	}
}

func TestPolicyFilter(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	repos := []string{"carol/x", "public/busybox", "secret/db", "team/app", "team/app/scratch"}
	for user, want := range map[string][]string{
		"":        {"public/busybox"},
		"bob":     {"public/busybox", "team/app", "team/app/scratch"},
		"carol":   {"carol/x", "public/busybox"},
		"alice":   repos,
		"mallory": {"public/busybox"},
	} {
		if got := p.Filter(user, repos); !slices.Equal(got, want) {
			t.Errorf("Filter(%q) = %v, want %v", user, got, want)
		}
	}
}

// PullsNothing agrees with Filter: true exactly for those Filter would show
// no repository of any name.
func TestPolicyPullsNothing(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	for _, user := range []string{"", "bob", "carol", "alice", "mallory"} {
		if p.PullsNothing(user) {
			t.Errorf("PullsNothing(%q), though it may pull public/busybox", user)
		}
	}
	closed := mustPolicy(t, `
admins: {users: [root]}
groups: {devs: [bob]}
rules:
  - repositories: ["team/**"]
    groups: [devs]
    actions: [pull, push]
  - repositories: ["drop/**"]
    users: [carol]
    actions: [push]
`)
	for user, want := range map[string]bool{"": true, "carol": true, "mallory": true, "bob": false, "root": false} {
		if got := closed.PullsNothing(user); got != want {
			t.Errorf("PullsNothing(%q) = %v, want %v", user, got, want)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, wantErr string }{
		{"rules: [{repositories: [a], users: [x], actions: [write]}]", `unknown action "write"`},
		{"rules: [{repositories: ['a/[b'], users: [x], actions: [pull]}]", "syntax error in pattern"},
		{"rules: [{repositories: ['a//b'], users: [x], actions: [pull]}]", "empty component"},
		{"rules: [{users: [x], actions: [pull]}]", "no repositories"},
		{"rules: [{repositories: [a], groups: [nope], actions: [pull]}]", `unknown group "nope"`},
		{"rules: [{repositories: [a], actions: [pull]}]", "actions for no users or groups"},
		{"admins: {groups: [ops]}", `unknown group "ops"`},
		{"rules: [{repository: [a], users: [x], actions: [pull]}]", `line 1: unknown key "repository"`},
		{"", "grants nothing to anyone"},
		{"# to do\n", "grants nothing to anyone"},
		{"groups: {devs: [bob]}", "grants nothing to anyone"},
		{"rules: [{repositories: [a], users: [x], actions: [pull]}]\n---\nadmins: {users: [alice]}\n", "second YAML document"},
	} {
		_, err := ParsePolicy([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParsePolicy(%s) = %v, want an error with %q", tc.yaml, err, tc.wantErr)
		}
	}
}

// A policy file: who may do what where. Rules add up; anonymous grants
// apply to users too; "**" spans any number of path components.
func ExamplePolicy() {
	p, err := ParsePolicy([]byte(`
admins:
  users: [alice]
groups:
  devs: [bob, carol]
rules:
  - repositories: ["public/**"]
    anonymous: [pull]
  - repositories: ["team/**"]
    groups: [devs]
    actions: [pull, push]
  - repositories: ["**"]
    users: ["*"]
    actions: [pull]
`))
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Allows("", Repository("public/tools/jq", "pull")))
	fmt.Println(p.Allows("", Repository("team/app", "pull")))
	fmt.Println(p.Allows("bob", Repository("team/app", "push")))
	fmt.Println(p.Allows("bob", Repository("team/app", "delete")))
	fmt.Println(p.Allows("alice", Repository("team/app", "delete")))
	fmt.Println(p.Grant("dave", Repository("team/app", "pull", "push")))
	// Output:
	// true
	// false
	// true
	// false
	// true
	// repository:team/app:pull
}
