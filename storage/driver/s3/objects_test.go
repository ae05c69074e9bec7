package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
)

// TestServerHonoursIfNoneMatch pins down what Create relies on: the server
// itself refuses a conditional PUT over an existing key with 412, rather
// than ignoring the header and overwriting.
func TestServerHonoursIfNoneMatch(t *testing.T) {
	d := newTestDriver(t, testenv.S3(t), "")
	ctx := context.Background()
	put := func(body string) error {
		in := d.putInput("lease", []byte(body))
		in.IfNoneMatch = aws.String("*")
		_, err := d.client.PutObject(ctx, in)
		return err
	}
	if err := put("first"); err != nil {
		t.Fatal(err)
	}
	err := put("second")
	if httpStatus(err) != http.StatusPreconditionFailed {
		t.Fatalf("conditional PUT over an existing key: %v, want 412", err)
	}
	if got, _ := d.GetContent(ctx, "/lease"); string(got) != "first" {
		t.Fatalf("content after refused PUT = %q", got)
	}
}

// TestCreateRace has many writers race for one key: exactly one wins and
// its content is the one stored.
func TestCreateRace(t *testing.T) {
	d := newTestDriver(t, testenv.S3(t), "")
	ctx := context.Background()
	const racers = 16
	var wg sync.WaitGroup
	results := make([]error, racers)
	for i := range racers {
		wg.Go(func() { results[i] = d.Create(ctx, "/locks/x", []byte{byte('a' + i)}) })
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("racers %d and %d both created the key", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, driver.ErrExists):
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no racer created the key")
	}
	if got, _ := d.GetContent(ctx, "/locks/x"); string(got) != string(rune('a'+winner)) {
		t.Fatalf("stored %q, but racer %d won", got, winner)
	}
}

// TestMoveCopiesServerSide checks Move never moves the bytes through the
// driver, including the part-by-part copy S3 needs above 5 GiB (here made
// to happen at 10 MiB).
func TestMoveCopiesServerSide(t *testing.T) {
	var counter requestCounter
	d := newTestDriver(t, testenv.S3(t), "", countRequests(&counter))
	d.maxCopySize = 10 * mib
	ctx := context.Background()
	for _, size := range []int{mib, 25 * mib} {
		data := pattern(size, 7)
		if err := d.PutContent(ctx, "/src", data); err != nil {
			t.Fatal(err)
		}
		counter.reset()
		if err := d.Move(ctx, "/src", "/blobs/dst"); err != nil {
			t.Fatal(err)
		}
		if counter.count("GetObject") > 0 || counter.count("PutObject") > 0 || counter.count("UploadPart") > 0 || counter.sent > 4<<10 {
			t.Errorf("size %d: Move transferred data: %s, %d bytes", size, &counter, counter.sent)
		}
		if size > 10*mib && counter.count("UploadPartCopy") != 3 {
			t.Errorf("size %d: %d part copies, want 3", size, counter.count("UploadPartCopy"))
		}
		wantSum(t, d, "/blobs/dst", sha256.Sum256(data))
		if _, err := d.Stat(ctx, "/src"); !driver.IsNotFound(err) {
			t.Errorf("size %d: source still there: %v", size, err)
		}
	}
	if u := uploads(t, d); len(u) != 0 {
		t.Errorf("%d uploads left by multipart copies", len(u))
	}
}

func TestRedirectURL(t *testing.T) {
	srv := testenv.S3(t)
	ctx := context.Background()
	req := httptest.NewRequest("GET", "/v2/r/blobs/x", nil)

	plain := newTestDriver(t, srv, "")
	if err := plain.PutContent(ctx, "/blob", []byte("direct")); err != nil {
		t.Fatal(err)
	}
	if u, err := plain.RedirectURL(req, "/blob"); u != "" || err != nil {
		t.Errorf("RedirectURL without redirects configured = %q, %v", u, err)
	}

	d, err := New(ctx, Config{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, ForcePathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		Redirect: RedirectConfig{Expiry: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := d.RedirectURL(req, "/blob")
	if err != nil || !strings.HasPrefix(u, srv.Endpoint) {
		t.Fatalf("RedirectURL = %q, %v", u, err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "direct" {
		t.Fatalf("GET of the presigned URL: %s %q", resp.Status, body)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	d := newTestDriver(t, testenv.S3(t), "")
	ctx := context.Background()
	if _, err := d.GetContent(ctx, "/missing"); !driver.IsNotFound(err) {
		t.Errorf("GetContent: %v", err)
	}
	if _, err := d.Reader(ctx, "/missing", 3); !driver.IsNotFound(err) {
		t.Errorf("Reader at an offset: %v", err)
	}
	if err := d.PutContent(ctx, "/obj", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Reader(ctx, "/obj", 4); !driver.IsInvalidOffset(err) {
		t.Errorf("Reader beyond the end: %v", err)
	}
	if _, err := d.Reader(ctx, "/obj", -1); !driver.IsInvalidOffset(err) {
		t.Errorf("Reader at a negative offset: %v", err)
	}

	// A missing bucket is a configuration error, not a missing path.
	gone := *d
	gone.bucket = aws.String("no-such-bucket")
	if _, err := gone.GetContent(ctx, "/obj"); err == nil || driver.IsNotFound(err) {
		t.Errorf("GetContent from a missing bucket: %v, want an error that is not PathNotFound", err)
	}
	srv := testenv.S3(t)
	srv.Bucket = "no-such-bucket"
	if _, err := New(ctx, Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, ForcePathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}); err == nil {
		t.Error("New with a missing bucket succeeded")
	}
}

// TestUnreachableServerFailsFast checks the driver gives up on a server
// that does not answer rather than hanging.
func TestUnreachableServerFailsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := New(ctx, Config{Endpoint: "http://127.0.0.1:1", Bucket: "b", AccessKey: "a", SecretKey: "s"})
	if err == nil {
		t.Fatal("New against a closed port succeeded")
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("New took %v to fail", time.Since(start))
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{Bucket: "b", Region: "r"}
	for name, c := range map[string]Config{
		"no bucket":       {Region: "r"},
		"bad endpoint":    {Bucket: "b", Endpoint: "localhost:9000"},
		"key only":        {Bucket: "b", AccessKey: "a"},
		"secret only":     {Bucket: "b", SecretKey: "s"},
		"bad prefix":      {Bucket: "b", Prefix: "a/../b"},
		"odd prefix":      {Bucket: "b", Prefix: "a b"},
		"long prefix":     {Bucket: "b", Prefix: strings.Repeat("p", 65)},
		"storage class":   {Bucket: "b", StorageClass: "COLD"},
		"sse":             {Bucket: "b", ServerSideEncryption: "rot13"},
		"kms without sse": {Bucket: "b", KMSKeyID: "k"},
		"small parts":     {Bucket: "b", PartSize: mib},
		"long redirect":   {Bucket: "b", Redirect: RedirectConfig{Expiry: 8 * 24 * time.Hour}},
	} {
		if err := c.validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, c)
		}
	}
	for _, c := range []Config{
		ok,
		{Bucket: "b", Endpoint: "https://s3.example.com", Prefix: "/reg/v1/", StorageClass: "STANDARD_IA",
			ServerSideEncryption: "aws:kms", KMSKeyID: "k", PartSize: 64 * mib, Redirect: RedirectConfig{Expiry: time.Hour}},
	} {
		if err := c.validate(); err != nil {
			t.Errorf("%+v refused: %v", c, err)
		}
	}
}

var _ s3.HTTPClient = (*requestCounter)(nil)

// TestNewRefusesServerIgnoringIfNoneMatch puts a proxy in front of the
// server that answers conditional PUTs with success without storing
// anything, as a server ignoring the condition would: New must refuse it.
func TestNewRefusesServerIgnoringIfNoneMatch(t *testing.T) {
	srv := testenv.S3(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.Header.Get("If-None-Match") != "" {
			io.Copy(io.Discard, r.Body)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	cfg := Config{Endpoint: proxy.URL, Bucket: srv.Bucket, ForcePathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	_, err = New(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "If-None-Match") {
		t.Fatalf("New through a server ignoring If-None-Match: %v", err)
	}
	cfg.Endpoint = srv.Endpoint
	if _, err := New(context.Background(), cfg); err != nil {
		t.Fatalf("New on the server itself: %v", err)
	}
}

// TestPutBesideDeletes writes into new folders while other objects in them
// come and go, as concurrent uploads into a new repository do. A server
// that keeps objects as files (versitygw) prunes a folder a delete emptied,
// and a write racing that prune is refused with ExistingObjectIsDirectory
// although no directory holds its key; the write is retried, never failed.
func TestPutBesideDeletes(t *testing.T) {
	d := newTestDriver(t, testenv.S3(t), "")
	ctx := context.Background()
	for i := range 300 {
		dir := fmt.Sprintf("/repositories/r%d", i)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 2 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				p := fmt.Sprintf("%s/_uploads/u%d/data", dir, w)
				if err := d.PutContent(ctx, p, []byte("session")); err != nil {
					errs <- err
					return
				}
				errs <- d.Delete(ctx, path.Dir(p))
			}()
			go func() {
				defer wg.Done()
				errs <- d.PutContent(ctx, fmt.Sprintf("%s/_layers/sha256/l%d", dir, w), nil)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("folder %s: %v", dir, err)
			}
		}
	}
}

// A key that a multi-object delete refuses as busy (SlowDown) makes the
// delete unavailable, a retry later, not a fault.
func TestDeleteOfAKeyRefusedAsBusyIsUnavailable(t *testing.T) {
	srv := testenv.S3(t)
	d := newTestDriver(t, srv, "")
	ctx := context.Background()
	if err := d.PutContent(ctx, "/dir/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	busy := behindProxy(t, srv, func(w http.ResponseWriter, r *http.Request) bool {
		if _, ok := r.URL.Query()["delete"]; !ok || r.Method != http.MethodPost {
			return false
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Error><Key>dir/x</Key><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error></DeleteResult>`)
		return true
	})
	if err := busy.Delete(ctx, "/dir"); !driver.IsUnavailable(err) {
		t.Fatalf("delete refused with SlowDown: %v, want unavailable", err)
	}
}

// A small object whose body the connection cuts off midway is read again,
// and one cut off every time is the store's unavailability (503, retried),
// not a fault (500).
func TestCutBodyIsReadAgainThenUnavailable(t *testing.T) {
	srv := testenv.S3(t)
	d := newTestDriver(t, srv, "")
	ctx := context.Background()
	content := bytes.Repeat([]byte("x"), 3000)
	if err := d.PutContent(ctx, "/dir/x", content); err != nil {
		t.Fatal(err)
	}
	var cuts atomic.Int32
	cut := behindProxy(t, srv, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/dir/x") || cuts.Add(-1) < 0 {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.WriteHeader(http.StatusOK)
		w.Write(content[:1000])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // closes the connection mid-body
	})
	cuts.Store(1)
	if b, err := cut.GetContent(ctx, "/dir/x"); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("one cut: %d bytes, %v; want the object read again", len(b), err)
	}
	cuts.Store(bodyAttempts)
	if _, err := cut.GetContent(ctx, "/dir/x"); !driver.IsUnavailable(err) || cuts.Load() != 0 {
		t.Fatalf("cut every time: %v after %d reads, want unavailable after %d", err, bodyAttempts-cuts.Load(), bodyAttempts)
	}
}

// A server that takes a request and never answers costs a read its
// answerSilence, not minutes, while a server-side copy, which a server may
// work on silently for minutes, is given slowSilence.
func TestSilentServerGivenUpByOperation(t *testing.T) {
	srv := testenv.S3(t)
	d := newTestDriver(t, srv, "")
	ctx := context.Background()
	if err := d.PutContent(ctx, "/dir/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	defer func(a, s time.Duration) { answerSilence, slowSilence = a, s }(answerSilence, slowSilence)
	answerSilence, slowSilence = 200*time.Millisecond, time.Minute
	once := func(o *s3.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1) }
	silent := behindProxy(t, srv, func(w http.ResponseWriter, r *http.Request) bool {
		get := r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/dir/x")
		if !get && r.Header.Get("X-Amz-Copy-Source") == "" {
			return false
		}
		<-r.Context().Done() // never answers
		return true
	}, once)
	start := time.Now()
	if _, err := silent.GetContent(ctx, "/dir/x"); !driver.IsUnavailable(err) {
		t.Fatalf("a read never answered: %v, want unavailable", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("a read never answered took %v to give up", took)
	}
	// The copy waits past answerSilence: here until its context ends.
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start = time.Now()
	if err := silent.Move(cctx, "/dir/x", "/dir/y"); err == nil {
		t.Fatal("a copy never answered succeeded")
	}
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Fatalf("a copy gave up after %v, as an ordinary request would", took)
	}
}

// behindProxy returns a driver on srv through a proxy where intercept
// answers the requests it takes (returning true), and srv the others.
func behindProxy(t *testing.T, srv testenv.S3Server, intercept func(w http.ResponseWriter, r *http.Request) bool, opts ...func(*s3.Options)) *Driver {
	t.Helper()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !intercept(w, r) {
			forward.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(proxy.Close)
	d, err := New(context.Background(), Config{Endpoint: proxy.URL, Bucket: srv.Bucket, ForcePathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReplaceObjectIfKeepsAWriteBetween writes the key again while
// ReplaceObjectIf's read is on its way back: the replace must not land
// over that write (a stalled lease holder over the lease another took).
func TestReplaceObjectIfKeepsAWriteBetween(t *testing.T) {
	srv := testenv.S3(t)
	other := newTestDriver(t, srv, "")
	ctx := context.Background()
	const p = "/locks/key"
	if err := other.PutContent(ctx, p, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, p) {
			rec := httptest.NewRecorder()
			forward.ServeHTTP(rec, r)
			if err := other.PutContent(ctx, p, []byte("another's")); err != nil {
				t.Error(err)
			}
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		forward.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	d := newTestDriver(t, testenv.S3Server{Endpoint: proxy.URL, Region: srv.Region, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}, "")
	if !d.conditionalReplace {
		t.Fatal("conditional PUT (If-Match) not found on a server that has it")
	}
	replaced, err := d.ReplaceObjectIf(ctx, p, []byte("mine"), []byte("renewed"))
	if err != nil || replaced {
		t.Fatalf("ReplaceObjectIf over a write between its read and its write = %v, %v", replaced, err)
	}
	if got, err := other.GetContent(ctx, p); err != nil || string(got) != "another's" {
		t.Fatalf("content %q, %v; want the other write's", got, err)
	}
}
