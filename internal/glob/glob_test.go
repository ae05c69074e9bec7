package glob

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		glob, name string
		want       bool
	}{
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"team/**", "team", true},
		{"team/**", "team/app", true},
		{"team/**", "team/app/web", true},
		{"team/**", "teams/app", false},
		{"team/*", "team/app", true},
		{"team/*", "team/app/web", false},
		{"team/*", "team", false},
		{"team/*/scratch", "team/app/scratch", true},
		{"team/*/scratch", "team/a/b/scratch", false},
		{"team/**/scratch", "team/a/b/scratch", true},
		{"team/**/scratch", "team/scratch", true},
		{"lib-?", "lib-a", true},
		{"lib-[ab]", "lib-c", false},
		{"*", "a/b", false},
		{"a/b", "a/b", true},
		{"a/b", "a/bc", false},
		{"**/mirror/**/stable", "mirror/stable", true},
		{"**/mirror/**/stable", "x/mirror/y/mirror/z/stable", true},
		{"**/mirror/**/stable", "mirror/mirror/mirror/x", false},
		{"a/**/b/**", "a/b", true},
		{"a/**/b/**", "a/x/c", false},
		{"**/**", "a", true},
		{"a/**/**/b", "a/b/b", true},
		{"*/**/*", "a", false},
	} {
		glob, err := Compile(tc.glob)
		if err != nil {
			t.Fatal(err)
		}
		if got := glob.Match(strings.Split(tc.name, "/")); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.glob, tc.name, got, tc.want)
		}
	}
}

// matchByTrial is the plain reading of a glob, trying every "**" at
// every place: the reference the bounded Match must agree with.
func matchByTrial(glob, name []string) bool {
	if len(glob) == 0 {
		return len(name) == 0
	}
	if glob[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if matchByTrial(glob[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	return len(name) > 0 && Component(glob[0], name[0]) && matchByTrial(glob[1:], name[1:])
}

func TestMatchAgreesWithTrial(t *testing.T) {
	elems := []string{"**", "*", "a", "b", "?"}
	comps := []string{"a", "b", "c"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		glob := make([]string, 1+rng.IntN(5))
		for i := range glob {
			glob[i] = elems[rng.IntN(len(elems))]
		}
		name := make([]string, rng.IntN(7))
		for i := range name {
			name[i] = comps[rng.IntN(len(comps))]
		}
		if got, want := Glob(glob).Match(name), matchByTrial(glob, name); got != want {
			t.Fatalf("%q matches %q = %v, by trial %v", strings.Join(glob, "/"), strings.Join(name, "/"), got, want)
		}
	}
}

// BenchmarkGlobManyComponents is a name anyone may send the token server
// against a rule with three "**": by trial it took seconds.
func BenchmarkMatchManyComponents(b *testing.B) {
	glob, err := Compile("**/mirror/**/stable/**/x")
	if err != nil {
		b.Fatal(err)
	}
	name := strings.Split(strings.Repeat("mirror/", 100)+"y", "/")
	for b.Loop() {
		if glob.Match(name) {
			b.Fatal("matched")
		}
	}
}

func TestCompileRefusals(t *testing.T) {
	for _, bad := range []string{"", "team/", "/team", "team//app", "team/[", "Team/App", "team/*-DEV", "[!s]*", "team/[!a-c]x"} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
	for _, good := range []string{"team/**", "lib-?", "a/[A-Za-z]*", "[^s]*"} {
		if _, err := Compile(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}
