package hardening

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testserver"
	"github.com/lading-registry/lading/storage/driver"
)

// Hostile values for each slot of a request: traversal plain, encoded and
// double-encoded, encoded separators, backslashes, NUL, unicode look-alikes,
// overlong, and the names of the layout's own directories.
var (
	hostileNames = []string{
		"..", "%2e%2e", "%2E%2E", "ok/%2e%2e/repo", "ok%2f..%2fsecret", "..%2f..%2fsecret", "%252e%252e",
		`ok\..\..\secret`, "ok%5c..%5c..%5csecret", "ok%00", "%00", "ü", "%C3%BC", "%EF%BC%8E%EF%BC%8E",
		"ok/_uploads", "ok/_layers/sha256", "_catalog", "%23tmp", "ok/.", "ok//repo", strings.Repeat("a/", 200) + "a",
		strings.Repeat("a", 300), "ok/repo/..", "ok/repo%2f..%2f..%2f..%2fsecret",
	}
	hostileRefs = []string{
		"..", "%2e%2e", "..%2f..%2f..%2fsecret", "sha256:..%2f..%2f..%2fsecret", "sha256:%2e%2e", "sha256:" + strings.Repeat("0", 62) + "%2f.",
		"sha256:" + strings.Repeat("0", 64) + "%00", "sha256:" + strings.Repeat("0", 64) + "%2f..%2f..", `sha256:..\..\secret`, "sha512:..",
		"SHA256:" + strings.Repeat("0", 64), "sha256:" + strings.Repeat("G", 64), "%C3%BC", "%23tmp", strings.Repeat("9", 2000), "..%5c..%5csecret",
	}
	hostileIDs = []string{
		"..", "%2e%2e", "..%2f..%2f..%2f..%2fsecret", "%2e%2e%5c%2e%2e", "00000000-0000-4000-8000-000000000000%2f..", "%23tmp",
		"00000000-0000-4000-8000-000000000000%00", "%C3%BC", strings.Repeat("f", 3000), "00000000-0000-4000-8000-00000000000%2E",
		"00000000-0000-4000-8000-000000000000%2f..%2f..%2f..%2f..%2f..%2fsecret",
	}
	hostileTags = []string{"..", "%2e%2e", "..%2f..%2fsecret", "%2fsecret", "%23tmp", "%00", ".hidden", strings.Repeat("t", 200)}
)

// rawStatus sends one request exactly as written, without a client's
// normalisation, and returns the status.
func rawStatus(t *testing.T, addr, method, target string, body []byte) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n", method, target, addr, len(body))
	conn.Write(body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHostilePaths aims requests at every slot of the API with values
// meant to reach outside the storage root, then checks that no request
// got a 5xx or a success, that nothing appeared or changed beside the
// root, and that everything inside it has a path the drivers' rules allow
// in the one repository the test created.
func TestHostilePaths(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	secret := filepath.Join(parent, "secret")
	if err := os.WriteFile(secret, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := start(t, testserver.Options{Root: root})
	c := newClient(srv.URL, 2)
	defer c.close()
	blob := randomBytes(1000)
	d, err := c.pushMonolithic("ok/repo", blob)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := c.startSession("ok/repo")
	if err != nil {
		t.Fatal(err)
	}
	id := filepath.Base(loc)
	if status := rawStatus(t, srv.Addr, "GET", "/v2/ok/repo/blobs/"+d.String(), nil); status != http.StatusOK {
		t.Fatalf("a plain request over the raw channel: %d", status)
	}
	manifest := imageManifest(d, len(blob), d, len(blob), "hostile")
	other := digest.FromString("other").String()

	type req struct{ method, target string }
	var reqs []req
	add := func(target string, methods ...string) {
		for _, m := range methods {
			reqs = append(reqs, req{m, target})
		}
	}
	for _, n := range hostileNames {
		add("/v2/"+n+"/manifests/latest", "GET", "HEAD", "PUT", "DELETE")
		add("/v2/"+n+"/blobs/"+d.String(), "GET", "HEAD", "DELETE")
		add("/v2/"+n+"/blobs/uploads/", "POST")
		add("/v2/"+n+"/blobs/uploads/?digest="+d.String(), "POST")
		add("/v2/ok/repo/blobs/uploads/?mount="+d.String()+"&from="+n, "POST")
		add("/v2/"+n+"/blobs/uploads/"+id, "GET", "PATCH", "PUT", "DELETE")
		add("/v2/"+n+"/tags/list", "GET")
		add("/v2/"+n+"/referrers/"+d.String(), "GET")
		add("/v2/_catalog?last="+n, "GET")
	}
	for _, r := range hostileRefs {
		add("/v2/ok/repo/manifests/"+r, "GET", "HEAD", "PUT", "DELETE")
		add("/v2/ok/repo/blobs/"+r, "GET", "HEAD", "DELETE")
		add("/v2/ok/repo/blobs/uploads/?digest="+r, "POST")
		add("/v2/ok/repo/blobs/uploads/?mount="+r+"&from=ok/repo", "POST")
		add("/v2/ok/repo/blobs/uploads/"+id+"?digest="+r, "PUT")
		add("/v2/ok/repo/referrers/"+r, "GET")
	}
	for _, u := range hostileIDs {
		add("/v2/ok/repo/blobs/uploads/"+u, "GET", "PATCH", "DELETE")
		add("/v2/ok/repo/blobs/uploads/"+u+"?digest="+other, "PUT")
	}
	for _, tag := range hostileTags {
		add("/v2/ok/repo/manifests/"+tag, "PUT", "GET", "DELETE")
		add("/v2/ok/repo/manifests/"+d.String()+"?tag="+tag, "PUT")
		add("/v2/ok/repo/tags/list?last="+tag, "GET")
	}
	// Paths no client library would send: unencoded traversal.
	add("/v2/../../secret", "GET", "PUT")
	add("/v2/ok/repo/blobs/../../../../secret", "GET")
	add("/v2/ok/repo/manifests/../../../../../secret", "PUT")
	add("/v2/ok/repo/blobs/uploads/../../../../../../secret", "PATCH", "PUT")

	seen := map[int]int{}
	for _, r := range reqs {
		var body []byte
		switch r.method {
		case "PUT":
			body = manifest
		case "PATCH", "POST":
			body = blob
		}
		status := rawStatus(t, srv.Addr, r.method, r.target, body)
		seen[status]++
		if status >= 500 {
			t.Errorf("%s %s: %d", r.method, r.target, status)
		}
		if status < 300 && status != http.StatusNotFound {
			// Only the catalog and a repository's own tags list can answer a
			// hostile value with success, and they list nothing hostile.
			if !(r.method == "GET" && (strings.HasPrefix(r.target, "/v2/_catalog") || strings.HasPrefix(r.target, "/v2/ok/repo/tags/list"))) {
				t.Errorf("%s %s: accepted with %d", r.method, r.target, status)
			}
		}
	}
	t.Logf("%d hostile requests; statuses %v", len(reqs), seen)

	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"root", "secret"}) {
		t.Errorf("beside the root: %q", names)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "keep" {
		t.Errorf("file beside the root: %q %v", b, err)
	}
	checkRoot(t, root)
	if _, err := c.expect(http.StatusOK, http.MethodGet, "/v2/ok/repo/blobs/"+d.String(), nil); err != nil {
		t.Errorf("the real blob after the attack: %v", err)
	}
	if off, _, err := c.sessionOffset(loc); err != nil || off != 0 {
		t.Errorf("the real session after the attack: %d %v", off, err)
	}
}

// checkRoot walks the storage root: every path is one the drivers' rules
// allow (the filesystem driver's temporary directory and lock aside), and the only
// repository is ok/repo.
func checkRoot(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		switch rel {
		case "#tmp":
			return filepath.SkipDir
		case "#serving": // the serving process's lock
			return nil
		}
		if e.Type()&fs.ModeSymlink != 0 {
			t.Errorf("symbolic link in the store: %s", rel)
		}
		if err := driver.ValidatePath("/" + filepath.ToSlash(rel)); err != nil {
			t.Errorf("path in the store: %v", err)
		}
		if rest, ok := strings.CutPrefix(filepath.ToSlash(rel), "repositories/"); ok && !strings.HasPrefix(rest, "ok") {
			t.Errorf("repository made by a hostile request: %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
