package testsuite

import (
	"io"
	"net/http/httptest"
	"strings"

	"github.com/lading-registry/lading/storage/driver"
)

// testPathValidation goes through driver.Instrument, the one place paths
// are checked: every operation must refuse every invalid path before the
// backend sees it, and so leave nothing behind.
func testPathValidation(e *env) {
	d := driver.Instrument(e.d, nil)
	valid := e.put("valid", []byte("v"))
	invalid := []string{
		"", "a", "a/b",
		e.p + "/", e.p + "/a/", e.p + "//a", e.p + "/a//b",
		e.p + "/a/../b", e.p + "/./a", e.p + "/a/.", e.p + "/..",
		e.p + "/a b", e.p + "/a%2fb", e.p + "/ä", e.p + "/a\x00b", e.p + `/a\b`, e.p + "/a:b",
		e.p + "/" + strings.Repeat("a", driver.MaxPathLength),
	}
	for _, p := range invalid {
		check := func(op string, err error) {
			e.t.Helper()
			if !driver.IsInvalidPath(err) {
				e.t.Errorf("%s(%q): %v, want InvalidPathError", op, p, err)
			}
		}
		_, err := d.GetContent(e.ctx, p)
		check("GetContent", err)
		check("PutContent", d.PutContent(e.ctx, p, []byte("x")))
		check("Create", d.Create(e.ctx, p, []byte("x")))
		r, err := d.Reader(e.ctx, p, 0)
		check("Reader", err)
		if err == nil {
			r.Close()
		}
		w, err := d.Writer(e.ctx, p, false)
		check("Writer", err)
		if err == nil {
			w.Cancel(e.ctx)
			w.Close()
		}
		_, err = d.Stat(e.ctx, p)
		check("Stat", err)
		_, err = d.List(e.ctx, p)
		check("List", err)
		check("Move from", d.Move(e.ctx, p, e.path("moved")))
		check("Move to", d.Move(e.ctx, valid, p))
		check("Delete", d.Delete(e.ctx, p))
		check("Walk", d.Walk(e.ctx, p, "", func(driver.FileInfo) error { return nil }))
		if p != "" {
			check("Walk from", d.Walk(e.ctx, e.p, p, func(driver.FileInfo) error { return nil }))
		}
		_, err = d.RedirectURL(httptest.NewRequest("GET", "/", nil), p)
		check("RedirectURL", err)
	}
	e.wantContent(valid, []byte("v"))
	e.wantPaths("Walk after invalid calls", e.walk(e.p, ""), []string{valid})
}

// testLongestPath stores an object at a path of exactly MaxPathLength,
// made of segments every backend accepts (file names stop at 255 bytes).
func testLongestPath(e *env) {
	d := driver.Instrument(e.d, nil)
	var b strings.Builder
	b.WriteString(e.p)
	for b.Len() < driver.MaxPathLength {
		b.WriteString("/")
		b.WriteString(strings.Repeat("x", min(200, driver.MaxPathLength-b.Len())))
	}
	p := b.String()
	if strings.HasSuffix(p, "/") { // the last segment came out empty
		p = p[:len(p)-1] + "y"
	}
	if len(p) != driver.MaxPathLength {
		e.t.Fatalf("built a path of %d bytes", len(p))
	}
	if err := d.PutContent(e.ctx, p, []byte("far")); err != nil {
		e.t.Fatalf("PutContent at the longest path: %v", err)
	}
	r, err := d.Reader(e.ctx, p, 1)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); string(got) != "ar" {
		e.t.Errorf("read %q at the longest path", got)
	}
	e.wantPaths("Walk", e.walk(e.p, ""), []string{p})
}
