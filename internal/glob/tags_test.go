package glob

import "testing"

func TestTagRules(t *testing.T) {
	rules, err := ParseTagRules(" v*, prod/**:release-* ,team/*:stable")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo, tag string
		want      bool
	}{
		{"a", "v1", true},
		{"a/b/c", "v1.2.3", true},
		{"a", "latest", false},
		{"prod", "release-1", true},
		{"prod/app/web", "release-1", true},
		{"staging/app", "release-1", false},
		{"team/app", "stable", true},
		{"team/app/web", "stable", false},
		{"team/app", "stable-1", false},
	} {
		if got := rules.Match(tc.repo, tc.tag); got != tc.want {
			t.Errorf("%s:%s = %v, want %v", tc.repo, tc.tag, got, tc.want)
		}
	}
	for repo, want := range map[string]bool{"a": true, "staging/app": true} {
		if got := rules.MayMatch(repo); got != want {
			t.Errorf("MayMatch(%q) = %v, want %v", repo, got, want)
		}
	}
	scoped, _ := ParseTagRules("prod/**:release-*, team/*:stable")
	for repo, want := range map[string]bool{"prod": true, "prod/app/web": true, "team/app": true, "team/app/web": false, "staging": false} {
		if got := scoped.MayMatch(repo); got != want {
			t.Errorf("scoped MayMatch(%q) = %v, want %v", repo, got, want)
		}
	}
	if none, err := ParseTagRules(""); err != nil || none.Match("a", "v1") || none.MayMatch("a") {
		t.Errorf("empty spec: %v, %v", none, err)
	}
	for _, bad := range []string{"v*,", "prod/:v*", "a:b:c", "prod:", "[", "prod:[", "a/b", "[!d]*", "prod:v[!0]"} {
		if _, err := ParseTagRules(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseTags(t *testing.T) {
	got, err := ParseTags(" pr-*, build-[0-9]* ,sha256-*")
	if err != nil || len(got) != 3 || got[0] != "pr-*" || got[1] != "build-[0-9]*" || got[2] != "sha256-*" {
		t.Fatalf("%q, %v", got, err)
	}
	if none, err := ParseTags(" "); err != nil || none != nil {
		t.Errorf("empty spec: %q, %v", none, err)
	}
	for _, bad := range []string{"pr-*,", "a/b", "repo:tag", "[", "a, ,b", "[!p]*"} {
		if _, err := ParseTags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
