package auth

import (
	"slices"
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
