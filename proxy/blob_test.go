package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// upstreamServing answers GET and HEAD of one blob with body, whatever its
// digest.
func upstreamServing(t *testing.T, d digest.Digest, body []byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/", "/v2":
			w.WriteHeader(http.StatusOK)
		case "/v2/team/app/blobs/" + d.String():
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestBlobFillHoldsBackTheLastByteUntilVerified(t *testing.T) {
	content := bytes.Repeat([]byte("layer bytes "), 200_000) // 2.4 MB: several reads
	d := digest.FromBytes(content)
	damaged := bytes.Clone(content)
	damaged[len(damaged)/2] ^= 1

	for _, tc := range []struct {
		name   string
		served []byte
		ok     bool
	}{{"whole", content, true}, {"damaged", damaged, false}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.New(inmemory.New(), registry.Options{})
			m, err := New(reg, Options{RemoteURL: upstreamServing(t, d, tc.served)})
			if err != nil {
				t.Fatal(err)
			}
			if size, err := m.StatBlob(t.Context(), "team/app", d); err != nil || size != int64(len(content)) {
				t.Fatalf("stat upstream: %d %v", size, err)
			}
			fill, err := m.FetchBlob(t.Context(), "team/app", d)
			if err != nil {
				t.Fatal(err)
			}
			var client bytes.Buffer
			err = fill.CopyTo(&client)
			repo, _ := reg.Repository("team/app")
			_, statErr := repo.Blobs().Stat(t.Context(), d)
			if tc.ok {
				if err != nil || !bytes.Equal(client.Bytes(), content) || statErr != nil {
					t.Fatalf("fill: %v, %d bytes to the client, stored: %v", err, client.Len(), statErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "DIGEST_INVALID") {
				t.Fatalf("fill of damaged bytes: %v", err)
			}
			if client.Len() != len(content)-1 {
				t.Fatalf("the client got %d of %d bytes of a blob that failed its check", client.Len(), len(content))
			}
			if statErr == nil {
				t.Fatal("damaged bytes stored")
			}
		})
	}
}

func TestBlobUnknownUpstream(t *testing.T) {
	reg := registry.New(inmemory.New(), registry.Options{})
	m, err := New(reg, Options{RemoteURL: upstreamServing(t, digest.FromString("x"), nil)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.FetchBlob(t.Context(), "team/app", digest.FromString("y"))
	if !errorsIsCode(err, registry.CodeBlobUnknown) {
		t.Fatalf("missing upstream: %v", err)
	}
}

func errorsIsCode(err error, code registry.Code) bool {
	e, ok := registry.AsError(err)
	return ok && e.Code == code
}

// A request for a blob another is fetching waits for that fetch: told to
// read the store when it stored the blob, given its error when the
// upstream refused it, and fetching the blob itself when the first was
// given up by its client, or past followWait.
func TestBlobFetchesAreShared(t *testing.T) {
	content := bytes.Repeat([]byte("shared "), 1000)
	d := digest.FromBytes(content)
	reg := registry.New(inmemory.New(), registry.Options{})
	m, err := New(reg, Options{RemoteURL: upstreamServing(t, d, content)})
	if err != nil {
		t.Fatal(err)
	}
	follow := func() chan error {
		waited := make(chan error, 1)
		go func() {
			fill, err := m.FetchBlob(t.Context(), "team/app", d)
			if err == nil {
				err = fill.CopyTo(io.Discard)
			}
			waited <- err
		}()
		select {
		case err := <-waited:
			t.Fatalf("a second request did not wait for the first's fetch: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		return waited
	}

	// Given up by its client: a waiting request takes it up, and stores it.
	abandoned, err := m.FetchBlob(t.Context(), "team/app", d)
	if err != nil {
		t.Fatal(err)
	}
	waited := follow()
	abandoned.Close()
	if err := <-waited; err != nil {
		t.Fatalf("after an abandoned fetch: %v, want the blob fetched", err)
	}
	repo, _ := reg.Repository("team/app")
	if _, err := repo.Blobs().Stat(t.Context(), d); err != nil {
		t.Fatalf("not stored by the request that took it up: %v", err)
	}

	// The upstream's refusal is the waiting requests' answer too.
	key := "team/app@" + d.String()
	if err := repo.Blobs().Delete(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	fl, _ := m.blobs.join(key)
	waited = follow()
	refused := &registry.Error{Code: registry.CodeTooManyRequests, Message: "upstream rate limit"}
	m.blobs.leave(key, fl, false, refused)
	if err := <-waited; !errors.Is(err, refused) {
		t.Fatalf("after an upstream refusal: %v", err)
	}

	// Stored by the first: the others read the store.
	first, err := m.FetchBlob(t.Context(), "team/app", d)
	if err != nil {
		t.Fatal(err)
	}
	waited = follow()
	if err := first.CopyTo(io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; !errors.Is(err, server.ErrFetchedMeanwhile) {
		t.Fatalf("the waiting request: %v, want ErrFetchedMeanwhile", err)
	}

	// Past the wait, a request fetches the blob itself.
	if err := repo.Blobs().Delete(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	defer func(w time.Duration) { followWait = w }(followWait)
	followWait = 50 * time.Millisecond
	slow, err := m.FetchBlob(t.Context(), "team/app", d)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	own, err := m.FetchBlob(t.Context(), "team/app", d)
	if err != nil {
		t.Fatalf("past the wait: %v", err)
	}
	var got bytes.Buffer
	if err := own.CopyTo(&got); err != nil || !bytes.Equal(got.Bytes(), content) {
		t.Fatalf("own fetch: %v, %d bytes", err, got.Len())
	}
}

// An upstream gone quiet mid-blob ends the fetch, once upstreamIdle has
// passed with no byte, and the requests waiting on it are answered.
func TestStalledUpstreamEndsTheFetch(t *testing.T) {
	content := bytes.Repeat([]byte("stall "), 100_000)
	d := digest.FromBytes(content)
	stalled := make(chan struct{})
	t.Cleanup(func() { close(stalled) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/team/app/blobs/"+d.String() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content[:len(content)/2])
		w.(http.Flusher).Flush()
		select {
		case <-stalled:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	defer func(d time.Duration) { upstreamIdle = d }(upstreamIdle)
	upstreamIdle = 200 * time.Millisecond
	m, err := New(registry.New(inmemory.New(), registry.Options{}), Options{RemoteURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	fill, err := m.FetchBlob(t.Context(), "team/app", d)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := m.FetchBlob(t.Context(), "team/app", d)
		waited <- err
	}()
	start := time.Now()
	var client bytes.Buffer
	if err := fill.CopyTo(&client); err == nil {
		t.Fatal("a stalled fetch succeeded")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the stalled fetch ended after %s", took)
	}
	if client.Len() >= len(content) {
		t.Errorf("the client got %d bytes of a blob never received whole", client.Len())
	}
	if err := <-waited; !errorsIsCode(err, registry.CodeUnavailable) {
		t.Errorf("the waiting request: %v, want UNAVAILABLE", err)
	}
}

// slowWriter takes pause over each write, as a slow client does.
type slowWriter struct {
	bytes.Buffer
	pause time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.pause)
	return w.Buffer.Write(p)
}

// Time spent handing bytes to a slow client is not the upstream's
// silence: such a fetch completes.
func TestSlowClientIsNoStalledUpstream(t *testing.T) {
	content := bytes.Repeat([]byte("slow client "), 300_000) // 3.6 MB: several writes
	d := digest.FromBytes(content)
	defer func(d time.Duration) { upstreamIdle = d }(upstreamIdle)
	upstreamIdle = 200 * time.Millisecond
	m, err := New(registry.New(inmemory.New(), registry.Options{}), Options{RemoteURL: upstreamServing(t, d, content)})
	if err != nil {
		t.Fatal(err)
	}
	fill, err := m.FetchBlob(t.Context(), "team/app", d)
	if err != nil {
		t.Fatal(err)
	}
	client := &slowWriter{pause: 300 * time.Millisecond}
	if err := fill.CopyTo(client); err != nil || !bytes.Equal(client.Bytes(), content) {
		t.Fatalf("fetch to a slow client: %v, %d of %d bytes", err, client.Len(), len(content))
	}
}
