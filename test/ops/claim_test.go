package ops

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// One lading serve writes a root: a second stops at once with a message
// naming the first, a read-only one may serve beside it (a mirror), and
// once the first has stopped another starts on the same root.
func TestOneServerPerRoot(t *testing.T) {
	root := t.TempDir()
	first, addr := serve(t, nil, "--root", root)
	pushRandom(t, addr+"/ops/claimed:v1")

	second := launch(t, nil, "serve", "--addr", "127.0.0.1:0", "--root", root)
	if code := second.exit(t, 20*time.Second); code == 0 {
		t.Fatal("a second lading serve on the same root exited 0")
	}
	if out := second.output(); !strings.Contains(out, "one lading serve per root") || !strings.Contains(out, strconv.Itoa(first.cmd.Process.Pid)) {
		t.Fatalf("the second server's message names neither the rule nor the first's process %d:\n%s", first.cmd.Process.Pid, out)
	}

	_, mirror := serve(t, nil, "--root", root, "--read-only")
	if code, _ := get(t, "http://"+mirror+"/v2/ops/claimed/manifests/v1"); code != http.StatusOK {
		t.Fatalf("read-only server beside the first: manifest GET %d", code)
	}

	if first.stop(t) != 0 {
		t.Fatal("exit status after SIGTERM is not 0")
	}
	serve(t, nil, "--root", root)
}
