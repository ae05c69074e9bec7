package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/notify/notifytest"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// tagsMirror is an upstream that only lists tags; down when tags is nil.
type tagsMirror struct{ tags []string }

func (m tagsMirror) Manifest(context.Context, string, string) error { return nil }
func (m tagsMirror) Pulled(string, digest.Digest)                   {}
func (m tagsMirror) StatBlob(context.Context, string, digest.Digest) (int64, error) {
	return 0, &registry.Error{Code: registry.CodeBlobUnknown}
}
func (m tagsMirror) FetchBlob(context.Context, string, digest.Digest) (BlobFill, error) {
	return nil, &registry.Error{Code: registry.CodeBlobUnknown}
}
func (m tagsMirror) Tags(context.Context, string) ([]string, bool, error) {
	return m.tags, m.tags != nil, nil
}

func TestMirrorTagsPaged(t *testing.T) {
	h := newHandler(t, Options{Mirror: tagsMirror{tags: []string{"v3", "v1", "latest", "v2", "v1"}}})
	for _, c := range []struct {
		query, want, next string
	}{
		{"", "latest,v1,v2,v3", ""},
		{"?n=2", "latest,v1", "last=v1"},
		{"?n=2&last=v1", "v2,v3", ""},
		{"?n=2&last=v0", "v1,v2", "last=v2"},
		{"?last=v3", "", ""},
		{"?n=0", "", ""},
	} {
		rec := serve(t, h, request{method: http.MethodGet, target: "/v2/team/app/tags/list" + c.query})
		var list tagList
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &list) != nil {
			t.Fatalf("%s: %d %s", c.query, rec.Code, rec.Body)
		}
		if got := strings.Join(list.Tags, ","); got != c.want {
			t.Errorf("%s: tags %q, want %q", c.query, got, c.want)
		}
		if link := rec.Header().Get("Link"); !strings.Contains(link, c.next) || (c.next == "") != (link == "") {
			t.Errorf("%s: Link %q, want one with %q", c.query, link, c.next)
		}
	}
	// Upstream down: the local tags, here none of a repository not held.
	h = newHandler(t, Options{Mirror: tagsMirror{}})
	wantStatus(t, serve(t, h, request{method: http.MethodGet, target: "/v2/team/app/tags/list"}), http.StatusNotFound, registry.CodeNameUnknown)
}

// blobMirror serves one blob from memory.
type blobMirror struct {
	tagsMirror
	content []byte
}

func (m blobMirror) FetchBlob(_ context.Context, _ string, d digest.Digest) (BlobFill, error) {
	if d != digest.FromBytes(m.content) {
		return nil, &registry.Error{Code: registry.CodeBlobUnknown}
	}
	return bytesFill(m.content), nil
}

type bytesFill []byte

func (b bytesFill) Size() int64 { return int64(len(b)) }
func (b bytesFill) CopyTo(w io.Writer) error {
	_, err := w.Write(b)
	return err
}
func (b bytesFill) Close() error { return nil }

// A blob a mirror fetched for a client is a pull, as one it held.
func TestMirrorBlobFillIsAPull(t *testing.T) {
	rc := notifytest.NewReceiver(t, nil)
	events := notify.New([]notify.EndpointConfig{{Name: "r", URL: rc.URL, Timeout: 5 * time.Second, Backoff: time.Millisecond,
		MaxBackoff: time.Millisecond, MaxQueue: 100, MaxBatch: 1}}, "", slog.New(slog.DiscardHandler))
	defer events.Close(context.Background())
	content := []byte("fetched upstream")
	h := newHandler(t, Options{Mirror: blobMirror{content: content}, Events: events})
	d := digest.FromBytes(content)
	rec := serve(t, h, request{method: http.MethodGet, target: "/v2/team/app/blobs/" + d.String()})
	if rec.Code != http.StatusOK || rec.Body.String() != string(content) {
		t.Fatalf("GET through the mirror: %d %q", rec.Code, rec.Body)
	}
	rc.WaitFor(t, 1)
	if got := rc.Events(); got[0].Action != notify.ActionPull || got[0].Target.Digest != d || got[0].Target.Size != int64(len(content)) {
		t.Fatalf("events:%s", notifytest.Describe(got))
	}
}

// waitingMirror refuses every manifest, asking to wait.
type waitingMirror struct{ tagsMirror }

type waitErr struct{}

func (waitErr) Error() string { return "wait" }
func (waitErr) Unwrap() error {
	return &registry.Error{Code: registry.CodeTooManyRequests, Message: "the upstream is rate limiting"}
}
func (waitErr) RetryAfter() time.Duration { return 29500 * time.Millisecond }

func (waitingMirror) Manifest(context.Context, string, string) error { return waitErr{} }

// A refusal that knows how long to wait says so in Retry-After.
func TestMirrorRetryAfterPassedOn(t *testing.T) {
	h := newHandler(t, Options{Mirror: waitingMirror{}})
	rec := serve(t, h, request{method: http.MethodGet, target: "/v2/team/app/manifests/v1"})
	wantStatus(t, rec, http.StatusTooManyRequests, registry.CodeTooManyRequests)
	if got := rec.Header().Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After %q, want 30", got)
	}
}

// refillingMirror says each manifest is held, and fills it only when asked
// again: as a manifest evicted between the fill and the read.
type refillingMirror struct {
	tagsMirror
	reg     *registry.Registry
	payload []byte
	asked   *int
}

func (m refillingMirror) Manifest(ctx context.Context, repo, reference string) error {
	*m.asked++
	if *m.asked == 1 {
		return nil
	}
	r, err := m.reg.Repository(repo)
	if err != nil {
		return err
	}
	_, err = r.Manifests().Fill(ctx, reference, "", m.payload)
	return err
}

func TestMirrorFillsAgainWhatWentBeforeTheRead(t *testing.T) {
	payload := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2},"layers":[]}`)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		asked := 0
		reg := registry.New(inmemory.New(), registry.Options{})
		h := New(reg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Mirror: refillingMirror{reg: reg, payload: payload, asked: &asked}})
		rec := serve(t, h, request{method: method, target: "/v2/team/app/manifests/v1"})
		if rec.Code != http.StatusOK || rec.Header().Get("Docker-Content-Digest") != digest.FromBytes(payload).String() || asked != 2 {
			t.Errorf("%s: %d %s, the mirror asked %d times; want 200 after a second fill", method, rec.Code, rec.Body, asked)
		}
	}
}
