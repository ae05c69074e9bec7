package authtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-registry/lading/auth"
	"github.com/lading-registry/lading/internal/testserver"
)

// TestDocumentedPolicy keeps the example in docs/auth.md one that lading
// accepts and that means what the text around it says.
func TestDocumentedPolicy(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testserver.ModuleRoot(t), "docs", "auth.md"))
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		if yaml, _, _ := strings.Cut(block, "```"); strings.Contains(yaml, "rules:") {
			example = yaml
		}
	}
	if example == "" {
		t.Fatal("no policy example in docs/auth.md")
	}
	p, err := auth.ParsePolicy([]byte(example))
	if err != nil {
		t.Fatalf("the documented policy: %v", err)
	}
	for _, c := range []struct {
		user, repo, action string
		want               bool
	}{
		{"", "library/alpine", auth.ActionPull, true},
		{"", "public/x", auth.ActionPull, true},
		{"", "public/x/y", auth.ActionPull, false},
		{"", "team/app", auth.ActionPull, false},
		{"alice", "team/app/web", auth.ActionDelete, true},
		{"bob", "team/app", auth.ActionPush, true},
		{"bob", "team/app", auth.ActionDelete, false},
		{"carol", "anything/else", auth.ActionPull, true},
		{"carol", "team/app", auth.ActionPush, false},
		{"oscar", "anything/else", auth.ActionDelete, true},
		{"root", "team/app", auth.ActionDelete, true},
	} {
		if got := p.Allows(c.user, auth.Repository(c.repo, c.action)); got != c.want {
			t.Errorf("%q %s %s: allowed %v, want %v", c.user, c.action, c.repo, got, c.want)
		}
	}
}
