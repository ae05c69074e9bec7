package glob

import "testing"

func TestList(t *testing.T) {
	l, err := CompileList([]string{"team/*", "lib/**"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"team/app": true, "team/app/web": false, "lib": true, "lib/a/b": true, "other": false} {
		if got := l.Selects(name); got != want {
			t.Errorf("Selects(%q) = %v, want %v", name, got, want)
		}
	}
	if none, _ := CompileList(nil); !none.Selects("any/name") {
		t.Error("no patterns did not select every repository")
	}
	if _, err := CompileList([]string{"team/*", "team//app"}); err == nil {
		t.Error("an empty component was taken")
	}
}
