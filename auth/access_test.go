package auth

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Access
	}{
		{"repository:a:pull", Access{"repository", "a", []string{"pull"}}},
		{"repository:a/b:pull,push", Access{"repository", "a/b", []string{"pull", "push"}}},
		{"repository:org/team/app/web:pull,push,delete", Access{"repository", "org/team/app/web", []string{"pull", "push", "delete"}}},
		{"repository:localhost:5000/a/b:pull", Access{"repository", "localhost:5000/a/b", []string{"pull"}}},
		{"repository:a:b:c:push", Access{"repository", "a:b:c", []string{"push"}}},
		{"repository:a/b:*", Access{"repository", "a/b", []string{"*"}}},
		{"repository:a/b:", Access{"repository", "a/b", nil}},
		{"repository:a/b:pull,,pull", Access{"repository", "a/b", []string{"pull"}}},
		{"repository(plugin):vendor/x:pull", Access{"repository", "vendor/x", []string{"pull"}}},
		{"registry:catalog:*", Catalog},
	} {
		got, err := ParseScope(tc.in)
		if err != nil {
			t.Errorf("ParseScope(%q): %v", tc.in, err)
			continue
		}
		if got.Type != tc.want.Type || got.Name != tc.want.Name || !slices.Equal(got.Actions, tc.want.Actions) {
			t.Errorf("ParseScope(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "repository", "repository:a", ":a:pull", "repository::pull"} {
		if a, err := ParseScope(bad); err == nil {
			t.Errorf("ParseScope(%q) = %+v, want an error", bad, a)
		}
	}
}

func TestScopeRoundTrip(t *testing.T) {
	for _, s := range []string{"repository:a/b/c:pull,push", "repository:localhost:5000/x:delete", "registry:catalog:*"} {
		a, err := ParseScope(s)
		if err != nil || a.String() != s {
			t.Errorf("ParseScope(%q).String() = %q, %v", s, a.String(), err)
		}
	}
}

func TestParseScopesSpaceSeparated(t *testing.T) {
	got, err := ParseScopes([]string{"repository:a:pull repository:b/c:push", "registry:catalog:*"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1].Name != "b/c" || got[2].Type != TypeRegistry {
		t.Fatalf("ParseScopes = %+v", got)
	}
	if FormatScopes(got) != "repository:a:pull repository:b/c:push registry:catalog:*" {
		t.Errorf("FormatScopes = %q", FormatScopes(got))
	}
}

// A token request is open to anyone: what one scope or one request may
// ask for is bounded, so that parsing it costs little (15,000 actions in
// one scope took half a second to deduplicate).
func TestScopesBounded(t *testing.T) {
	actions := make([]string, 15000)
	for i := range actions {
		actions[i] = fmt.Sprintf("a%d", i)
	}
	if _, err := ParseScope("repository:x:" + strings.Join(actions, ",")); err == nil {
		t.Error("a scope of 15,000 actions parsed")
	}
	if _, err := ParseScope("repository:x:" + strings.Join(actions[:maxScopeActions], ",")); err != nil {
		t.Errorf("%d actions: %v", maxScopeActions, err)
	}
	scopes := strings.Repeat("repository:x:pull ", maxScopes+1)
	if _, err := ParseScopes([]string{scopes}); err == nil {
		t.Errorf("%d scopes parsed", maxScopes+1)
	}
	// A name far past any repository's, which every rule of the policy
	// would be matched against.
	if _, err := ParseScope("repository:" + strings.Repeat("mirror/", 8000) + "x:pull"); err == nil {
		t.Error("a scope name of 56 KB parsed")
	}
	if _, err := ParseScope("repository:localhost:5000/" + strings.Repeat("a", 255) + ":pull"); err != nil {
		t.Errorf("a registry host before a name of the longest length: %v", err)
	}
}
