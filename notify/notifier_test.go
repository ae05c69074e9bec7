package notify_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/internal/testserver"
	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/notify/notifytest"
)

func testEndpoint(name, url string) notify.EndpointConfig {
	return notify.EndpointConfig{Name: name, URL: url, Timeout: 2 * time.Second, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxQueue: 100, MaxBatch: 10}
}

var quiet = slog.New(slog.DiscardHandler)

func push(n *notify.Notifier, tag string) {
	r := httptest.NewRequest(http.MethodPut, "/v2/a/manifests/"+tag, nil)
	n.Manifest(r, notify.ActionPush, "a", v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString(tag), Size: 7}, tag)
}

func closeNow(t *testing.T, n *notify.Notifier) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Close(ctx)
}

func TestEnvelopeShape(t *testing.T) {
	rc := notifytest.NewReceiver(t, nil)
	cfg := testEndpoint("r", rc.URL)
	cfg.Headers = http.Header{"Authorization": {"Bearer xyz"}}
	n := notify.New([]notify.EndpointConfig{cfg}, "reg.example:5000", quiet)
	defer closeNow(t, n)
	r := httptest.NewRequest(http.MethodPut, "https://reg.example/v2/team/app/manifests/v1", nil)
	r.TLS = &tls.ConnectionState{}
	r.RemoteAddr = "10.0.0.9:4711"
	r.Header.Set("User-Agent", "crane/0.20")
	d := digest.FromString("m")
	n.Manifest(r, notify.ActionPush, "team/app", v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d, Size: 321}, "v1")
	rc.WaitFor(t, 1)

	if a := rc.Requests()[0].Get("Authorization"); a != "Bearer xyz" {
		t.Errorf("Authorization %q", a)
	}

	// The fields and names receivers written for Distribution read.
	raw, _ := json.Marshal(rc.Events()[0])
	var ev map[string]any
	_ = json.Unmarshal(raw, &ev)
	target, request, source := ev["target"].(map[string]any), ev["request"].(map[string]any), ev["source"].(map[string]any)
	for k, want := range map[string]any{
		"mediaType": v1.MediaTypeImageManifest, "digest": d.String(), "size": 321.0, "length": 321.0,
		"repository": "team/app", "tag": "v1", "url": "https://reg.example/v2/team/app/manifests/" + d.String(),
	} {
		if target[k] != want {
			t.Errorf("target.%s = %v, want %v", k, target[k], want)
		}
	}
	for k, want := range map[string]any{"addr": "10.0.0.9:4711", "host": "reg.example", "method": "PUT", "useragent": "crane/0.20"} {
		if request[k] != want {
			t.Errorf("request.%s = %v, want %v", k, request[k], want)
		}
	}
	if _, ok := request["id"]; !ok {
		t.Error("request.id missing")
	}
	if source["addr"] != "reg.example:5000" || source["instanceID"] != n.InstanceID() || len(n.InstanceID()) != 36 {
		t.Errorf("source %v", source)
	}
	if ev["action"] != "push" || ev["id"] == "" {
		t.Errorf("event %v", ev)
	}
	if _, err := time.Parse(time.RFC3339Nano, ev["timestamp"].(string)); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	if _, ok := target["fromRepository"]; ok {
		t.Error("fromRepository set outside a mount")
	}
	if !bytes.Contains(raw, []byte(`"actor":{}`)) {
		t.Errorf("an anonymous actor is not empty: %s", raw)
	}
}

func TestDeleteAndMountTargets(t *testing.T) {
	rc := notifytest.NewReceiver(t, nil)
	n := notify.New([]notify.EndpointConfig{testEndpoint("r", rc.URL)}, "", quiet)
	defer closeNow(t, n)
	r := httptest.NewRequest(http.MethodDelete, "/", nil)
	d := digest.FromString("b")
	n.Blob(r, notify.ActionDelete, "a", v1.Descriptor{Digest: d}, "")
	n.Blob(r, notify.ActionMount, "a", v1.Descriptor{Digest: d, Size: 3}, "b")
	got := rc.WaitFor(t, 2)
	if del := got[0].Target; del != (notify.Target{Repository: "a", Digest: d}) {
		t.Errorf("delete target %+v", del)
	}
	if m := got[1].Target; m.FromRepository != "b" || m.MediaType != notify.BlobMediaType || m.Size != 3 || !strings.HasSuffix(m.URL, "/v2/a/blobs/"+d.String()) {
		t.Errorf("mount target %+v", m)
	}
}

// An endpoint that fails twice gets the events afterwards, all of them, in
// the order they happened.
func TestFailingEndpointGetsEventsInOrderOnceItRecovers(t *testing.T) {
	rc := notifytest.NewReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusAccepted
	})
	cfg := testEndpoint("r", rc.URL)
	cfg.MaxBatch = 2
	n := notify.New([]notify.EndpointConfig{cfg}, "", quiet)
	defer closeNow(t, n)
	for _, tag := range []string{"t1", "t2", "t3", "t4", "t5"} {
		push(n, tag)
	}
	got := rc.WaitFor(t, 5)
	for i, ev := range got {
		if want := "t" + string(rune('1'+i)); ev.Target.Tag != want {
			t.Fatalf("event %d is %s, want %s", i, ev.Target.Tag, want)
		}
	}
	s := settledStats(n, func(s notify.Stats) bool { return s.Delivered == 5 })
	if s.Delivered != 5 || s.Failed != 0 || s.Dropped != 0 || s.LastSuccess.IsZero() {
		t.Errorf("stats %+v", s)
	}
	if n := len(rc.Requests()); n < 3 {
		t.Errorf("%d requests: the failures were not tried again", n)
	}
}

// A 4xx that trying again cannot change drops its batch, counted failed,
// and the events after it still go.
func TestRefusedEventsAreCountedAndDropped(t *testing.T) {
	rc := notifytest.NewReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	cfg := testEndpoint("r", rc.URL)
	cfg.MaxBatch = 1
	n := notify.New([]notify.EndpointConfig{cfg}, "", quiet)
	defer closeNow(t, n)
	push(n, "t1")
	push(n, "t2")
	got := rc.WaitFor(t, 1)
	if got[0].Target.Tag != "t2" {
		t.Fatalf("received %s", got[0].Target.Tag)
	}
	if s := settledStats(n, func(s notify.Stats) bool { return s.Delivered == 1 }); s.Failed != 1 || s.Delivered != 1 {
		t.Errorf("stats %+v", s)
	}
}

// settledStats waits, up to 5 s, for the first endpoint's stats to meet
// done: the receiver has an event before its answer reaches the sender,
// which counts it only then.
func settledStats(n *notify.Notifier, done func(notify.Stats) bool) notify.Stats {
	s := n.Stats()[0]
	for deadline := time.Now().Add(5 * time.Second); !done(s) && time.Now().Before(deadline); s = n.Stats()[0] {
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func TestTooManyRequestsIsTriedAgain(t *testing.T) {
	rc := notifytest.NewReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	n := notify.New([]notify.EndpointConfig{testEndpoint("r", rc.URL)}, "", quiet)
	defer closeNow(t, n)
	push(n, "t1")
	if got := rc.WaitFor(t, 1); got[0].Target.Tag != "t1" {
		t.Fatalf("received %+v", got)
	}
}

// An endpoint answering with a redirect does not get the events sent on
// to where it points, with the configured headers: it is failing, and
// they wait for it.
func TestRedirectIsNotFollowed(t *testing.T) {
	elsewhere := notifytest.NewReceiver(t, nil)
	var asked atomic.Int32
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Redirect(w, r, elsewhere.URL+"/hook", http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	cfg := testEndpoint("r", redirecting.URL)
	cfg.Headers = map[string][]string{"X-Token": {"secret"}}
	n := notify.New([]notify.EndpointConfig{cfg}, "", quiet)
	push(n, "t1")
	for deadline := time.Now().Add(5 * time.Second); asked.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond) // the event never goes
	defer cancel()
	n.Close(ctx)
	if asked.Load() < 2 {
		t.Fatalf("the endpoint was asked %d times, want it tried again", asked.Load())
	}
	if st := n.Stats()[0]; st.Delivered != 0 || len(elsewhere.Events()) != 0 {
		t.Errorf("delivered %d, the redirect's target got %d events; want none", st.Delivered, len(elsewhere.Events()))
	}
}

// An endpoint's Retry-After (in seconds) lengthens the wait before the
// batch is tried again, up to maxbackoff.
func TestRetryAfterIsHeeded(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		first := len(at) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	cfg := testEndpoint("r", srv.URL)
	cfg.MaxBackoff = 5 * time.Second
	n := notify.New([]notify.EndpointConfig{cfg}, "", quiet)
	push(n, "t1")
	for deadline := time.Now().Add(5 * time.Second); n.Stats()[0].Delivered == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	closeNow(t, n)
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 || at[1].Sub(at[0]) < 700*time.Millisecond {
		t.Fatalf("%d requests; the second %v after the first, want about a second", len(at), at[len(at)-1].Sub(at[0]))
	}
}

func TestFiltersByActionAndMediaType(t *testing.T) {
	rc := notifytest.NewReceiver(t, nil)
	cfg := testEndpoint("r", rc.URL)
	cfg.IgnoredActions = []string{notify.ActionPull}
	cfg.IgnoredMediaTypes = []string{notify.BlobMediaType}
	n := notify.New([]notify.EndpointConfig{cfg}, "", quiet)
	defer closeNow(t, n)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	d := digest.FromString("x")
	n.Blob(r, notify.ActionPush, "a", v1.Descriptor{Digest: d}, "")                                               // media type ignored
	n.Manifest(r, notify.ActionPull, "a", v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d}, "")     // action ignored
	n.Blob(r, notify.ActionDelete, "a", v1.Descriptor{Digest: d}, "")                                             // a delete has no media type
	n.Manifest(r, notify.ActionPush, "a", v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d}, "kept") // sent
	got := rc.WaitFor(t, 2)
	time.Sleep(50 * time.Millisecond)
	got = rc.Events()
	if len(got) != 2 || got[0].Action != notify.ActionDelete || got[1].Target.Tag != "kept" {
		t.Fatalf("received %+v", got)
	}
}

// A receiver that hangs holds one batch; the rest queue up to MaxQueue,
// the oldest dropped and counted, and recording never waits.
func TestHangingEndpointNeverBlocksRecording(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := testEndpoint("hang", srv.URL)
	cfg.Timeout = time.Minute
	cfg.MaxQueue = 10
	cfg.MaxBatch = 1
	n := notify.New([]notify.EndpointConfig{cfg}, "", quiet)
	push(n, "first")
	<-arrived
	start := time.Now()
	for i := range 999 {
		push(n, "t"+string(rune('a'+i%26)))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("999 events took %s to record", took)
	}
	if s := n.Stats()[0]; s.Queued != 10 || s.Dropped != 1000-10-1 {
		t.Errorf("stats %+v; want 10 queued, 989 dropped, one in flight", s)
	}
	// The stop ends the hanging delivery at its deadline and drops the
	// rest, counted.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if dropped := n.Close(ctx); dropped != 11 {
		t.Errorf("Close dropped %d, want 11", dropped)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %s", took)
	}
	if s := n.Stats()[0]; s.Dropped != 1000 || s.Delivered != 0 {
		t.Errorf("stats after Close %+v", s)
	}
}

// Close sends what is queued before returning when the endpoint answers.
func TestCloseSendsWhatIsQueued(t *testing.T) {
	rc := notifytest.NewReceiver(t, nil)
	n := notify.New([]notify.EndpointConfig{testEndpoint("r", rc.URL)}, "", quiet)
	for range 50 {
		push(n, "t")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if dropped := n.Close(ctx); dropped != 0 {
		t.Errorf("dropped %d", dropped)
	}
	if got := len(rc.Events()); got != 50 {
		t.Errorf("received %d of 50 before Close returned", got)
	}
}

func TestNilNotifierRecordsNothing(t *testing.T) {
	var n *notify.Notifier
	if notify.New(nil, "", quiet) != nil {
		t.Fatal("New without endpoints is not nil")
	}
	push(n, "t")
	if n.Stats() != nil || n.Close(context.Background()) != 0 {
		t.Fatal("a nil notify.Notifier did something")
	}
}

func TestFailuresWarnedOnceAMinuteWithoutSecrets(t *testing.T) {
	rc := notifytest.NewReceiver(t, func(int) int { return http.StatusBadGateway })
	logs := &testserver.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	cfg := testEndpoint("scan", strings.Replace(rc.URL, "http://", "http://hook:s3cret@", 1))
	cfg.Headers = http.Header{"Authorization": {"Bearer t0ken"}}
	n := notify.New([]notify.EndpointConfig{cfg}, "", log)
	push(n, "t")
	deadline := time.Now().Add(5 * time.Second)
	for {
		tries := len(rc.Requests())
		if tries >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tries", tries)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	n.Close(ctx)
	out := logs.String()
	if c := strings.Count(out, "notification endpoint failing"); c != 1 {
		t.Errorf("warned %d times, want once:\n%s", c, out)
	}
	if !strings.Contains(out, "endpoint=scan") || !strings.Contains(out, "status=502") {
		t.Errorf("the warning does not name the endpoint and status:\n%s", out)
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "t0ken") {
		t.Errorf("a secret was logged:\n%s", out)
	}

	// A transport error is logged without the URL, which holds the password.
	logs = &testserver.SyncBuffer{}
	log = slog.New(slog.NewTextHandler(logs, nil))
	cfg.URL = "http://hook:s3cret@127.0.0.1:1/"
	n = notify.New([]notify.EndpointConfig{cfg}, "", log)
	push(n, "t")
	for !strings.Contains(logs.String(), "error=") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	n.Close(ctx)
	if out := logs.String(); !strings.Contains(out, "error=") || strings.Contains(out, "s3cret") {
		t.Errorf("transport error logged as:\n%s", out)
	}
}

// Events of concurrent requests reach every endpoint in one order, that of
// their ids, as the events of one request do.
func TestEndpointsGetConcurrentEventsInOneOrder(t *testing.T) {
	a, b := notifytest.NewReceiver(t, nil), notifytest.NewReceiver(t, nil)
	cfgA, cfgB := testEndpoint("a", a.URL), testEndpoint("b", b.URL)
	cfgA.MaxQueue, cfgB.MaxQueue = 1000, 1000
	n := notify.New([]notify.EndpointConfig{cfgA, cfgB}, "", quiet)
	defer closeNow(t, n)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				push(n, fmt.Sprintf("g%d-%d", g, i))
			}
		})
	}
	wg.Wait()
	gotA, gotB := a.WaitFor(t, 400), b.WaitFor(t, 400)
	seq := func(ev notify.Event) int {
		i, _ := strconv.Atoi(ev.ID[strings.LastIndexByte(ev.ID, '-')+1:])
		return i
	}
	for i := range gotA {
		if gotA[i].ID != gotB[i].ID {
			t.Fatalf("event %d: %s at one endpoint, %s at the other", i, gotA[i].ID, gotB[i].ID)
		}
		if i > 0 && seq(gotA[i]) <= seq(gotA[i-1]) {
			t.Fatalf("event %d (%s) after %s", i, gotA[i].ID, gotA[i-1].ID)
		}
	}
}

// Behind a trusted proxy that ends TLS, targets' URLs are the https ones
// the client used.
func TestTargetURLBehindAProxy(t *testing.T) {
	rc := notifytest.NewReceiver(t, nil)
	n := notify.New([]notify.EndpointConfig{testEndpoint("r", rc.URL)}, "", quiet)
	defer closeNow(t, n)
	proxies, _ := httpx.ParseProxies("192.0.2.0/24") // httptest's peer
	h := httpx.ForwardedClient(proxies, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		n.Manifest(r, notify.ActionPush, "a", v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}, "v1")
	}))
	r := httptest.NewRequest(http.MethodPut, "/v2/a/manifests/v1", nil)
	r.Host = "registry.example"
	r.Header.Set("X-Forwarded-Proto", "https")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if u := rc.WaitFor(t, 1)[0].Target.URL; !strings.HasPrefix(u, "https://registry.example/v2/a/manifests/") {
		t.Errorf("target url %s", u)
	}
}
