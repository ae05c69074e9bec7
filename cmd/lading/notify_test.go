package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/testserver"
	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/notify/notifytest"
	authtest "github.com/lading-registry/lading/test/auth"
)

// notifyingServer runs serve with htpasswd auth (user alice) and the
// given endpoints, and returns its address and its access log.
func notifyingServer(t *testing.T, endpoints ...config.Endpoint) (string, *testserver.SyncBuffer) {
	t.Helper()
	cfg := testConfig(filepath.Join(t.TempDir(), "data"), "127.0.0.1:0")
	cfg.Auth.Htpasswd.Path = authtest.Write(t, map[string]string{"alice": "secret"}, "").Htpasswd
	cfg.HTTP.DrainTimeout = time.Second
	cfg.Notifications.Endpoints = endpoints
	accessLog := &testserver.SyncBuffer{}
	access, err := logging.NewAccess(accessLog, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	return serving(t, cfg, access), accessLog
}

// serving runs serve on cfg, access lines to access, until t ends, and
// returns the address it listens on.
func serving(t *testing.T, cfg *config.Config, access *slog.Logger) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	listening, served := make(chan string, 1), make(chan error, 1)
	go func() { served <- serve(ctx, cfg, discard, access, listening) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	select {
	case addr := <-listening:
		return addr
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}
	return ""
}

func endpoint(name, url string) config.Endpoint {
	var e config.Endpoint
	e.Name, e.URL = name, config.URL(url)
	e.Timeout, e.Backoff, e.MaxBackoff, e.MaxQueue, e.MaxBatch = 5*time.Second, 10*time.Millisecond, 50*time.Millisecond, 1000, 100
	return e
}

var alice = remote.WithAuth(&authn.Basic{Username: "alice", Password: "secret"})

// send makes one request as alice and returns its status.
func send(t *testing.T, method, url string, body io.Reader, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	req.SetBasicAuth("alice", "secret")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// accessIDs maps each request id in an access log to "METHOD status".
func accessIDs(t *testing.T, log string) map[string]string {
	ids := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct {
			Method    string `json:"method"`
			Status    int    `json:"status"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.RequestID != "" {
			ids[line.RequestID] = fmt.Sprintf("%s %d", line.Method, line.Status)
		}
	}
	return ids
}

func TestNotificationsEndToEnd(t *testing.T) {
	all := notifytest.NewReceiver(t, nil)
	// Fails its first two requests, then takes everything, in order.
	flaky := notifytest.NewReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	manifestsOnly := notifytest.NewReceiver(t, nil)
	flakyEP := endpoint("flaky", flaky.URL)
	flakyEP.MaxBatch = 1
	filtered := endpoint("manifests", manifestsOnly.URL)
	filtered.IgnoredMediaTypes = []string{notify.BlobMediaType}
	filtered.Ignore.Actions = []string{notify.ActionPull}
	addr, accessLog := notifyingServer(t, endpoint("all", all.URL), flakyEP, filtered)
	base := "http://" + addr

	// A push: each blob (layers and config), then the manifest by tag.
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, alice); err != nil {
		t.Fatal(err)
	}
	sizes := map[v1.Hash]int64{}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		sizes[d], _ = l.Size()
	}
	cfgName, _ := img.ConfigName()
	rawCfg, _ := img.RawConfigFile()
	sizes[cfgName] = int64(len(rawCfg))
	manifestDigest, _ := img.Digest()
	rawManifest, _ := img.RawManifest()
	mediaType, _ := img.MediaType()

	pushed := all.WaitFor(t, 4)
	if len(pushed) != 4 {
		t.Fatalf("a push of 3 blobs and a manifest gave: %s", notifytest.Describe(pushed))
	}
	ids := accessIDs(t, accessLog.String())
	for i, ev := range pushed {
		tg := ev.Target
		if ev.Action != notify.ActionPush || tg.Repository != "team/app" || ev.Actor.Name != "alice" {
			t.Errorf("event %d: %+v", i, ev)
		}
		if got := ids[ev.Request.ID]; got != "PUT 201" || ev.Request.Method != http.MethodPut {
			t.Errorf("event %d's request %q is %q in the access log, want a PUT answered 201", i, ev.Request.ID, got)
		}
		if ev.Source.InstanceID == "" || ev.Request.Host != addr || !strings.Contains(ev.Request.UserAgent, "go-containerregistry") {
			t.Errorf("event %d: source %+v, request %+v", i, ev.Source, ev.Request)
		}
		if i < 3 {
			h, _ := v1.NewHash(tg.Digest.String())
			if size, ok := sizes[h]; !ok || tg.Size != size || tg.Length != size || tg.MediaType != notify.BlobMediaType || tg.Tag != "" ||
				tg.URL != base+"/v2/team/app/blobs/"+tg.Digest.String() {
				t.Errorf("blob event %d: %+v", i, tg)
			}
			delete(sizes, h)
			continue
		}
		if tg.Digest.String() != manifestDigest.String() || tg.Tag != "v1" || tg.Size != int64(len(rawManifest)) || tg.MediaType != string(mediaType) ||
			tg.URL != base+"/v2/team/app/manifests/"+manifestDigest.String() {
			t.Errorf("manifest event: %+v", tg)
		}
	}

	// A pull: the manifest by tag, then each blob. HEADs tell nothing.
	pulled, err := remote.Image(ref, alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pulled.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	for _, l := range must(pulled.Layers()) {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if status := send(t, http.MethodHead, base+"/v2/team/app/manifests/v1", nil); status != http.StatusOK {
		t.Fatalf("HEAD: %d", status)
	}
	got := all.WaitFor(t, 8)[4:]
	if len(got) != 4 || got[0].Action != notify.ActionPull || got[0].Target.Tag != "v1" || got[0].Request.Method != http.MethodGet {
		t.Fatalf("a pull gave: %s", notifytest.Describe(got))
	}
	for _, ev := range got[1:] {
		if ev.Action != notify.ActionPull || ev.Target.MediaType != notify.BlobMediaType || ev.Actor.Name != "alice" {
			t.Errorf("blob pull: %+v", ev)
		}
	}

	// A mount from team/app into team/copy.
	layer := pushed[0].Target.Digest
	if status := send(t, http.MethodPost, base+"/v2/team/copy/blobs/uploads/?mount="+layer.String()+"&from=team/app", nil); status != http.StatusCreated {
		t.Fatalf("mount: %d", status)
	}
	// Refused or failed requests tell nothing: a manifest naming a blob
	// the repository lacks, a push without credentials.
	bad := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("0", 64) + `","size":2},"layers":[]}`
	if status := send(t, http.MethodPut, base+"/v2/team/app/manifests/broken", strings.NewReader(bad), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); status != http.StatusBadRequest {
		t.Fatalf("broken manifest: %d", status)
	}
	anon, _ := http.NewRequest(http.MethodDelete, base+"/v2/team/app/manifests/v1", nil)
	if resp, err := http.DefaultClient.Do(anon); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous delete: %v %v", resp, err)
	}
	// A push by digest with two tags: one event a tag.
	if status := send(t, http.MethodPut, base+"/v2/team/app/manifests/"+manifestDigest.String()+"?tag=a&tag=b", strings.NewReader(string(rawManifest)), "Content-Type", string(mediaType)); status != http.StatusCreated {
		t.Fatalf("push with tags: %d", status)
	}
	// A delete of the manifest, by digest.
	if status := send(t, http.MethodDelete, base+"/v2/team/app/manifests/"+manifestDigest.String(), nil); status != http.StatusAccepted {
		t.Fatalf("delete: %d", status)
	}
	got = all.WaitFor(t, 12)[8:]
	if len(got) != 4 {
		t.Fatalf("after the pull: %s", notifytest.Describe(got))
	}
	if m := got[0]; m.Action != notify.ActionMount || m.Target.Repository != "team/copy" || m.Target.FromRepository != "team/app" || m.Target.Digest != layer {
		t.Errorf("mount: %+v", m)
	}
	if a, b := got[1], got[2]; a.Action != notify.ActionPush || a.Target.Tag != "a" || b.Target.Tag != "b" || a.Target.Digest != b.Target.Digest {
		t.Errorf("push with ?tag=a&tag=b: %s", notifytest.Describe(got[1:3]))
	}
	if d := got[3]; d.Action != notify.ActionDelete || d.Target.Digest.String() != manifestDigest.String() || d.Target.Repository != "team/app" || d.Target.MediaType != "" {
		t.Errorf("delete: %+v", d)
	}
	time.Sleep(100 * time.Millisecond)
	if extra := all.Events(); len(extra) != 12 {
		t.Errorf("events beyond those expected: %s", notifytest.Describe(extra[12:]))
	}

	// The endpoint that failed twice got every event, in the same order.
	want := all.Events()
	gotFlaky := flaky.WaitFor(t, len(want))
	for i := range want {
		if gotFlaky[i].ID != want[i].ID {
			t.Fatalf("flaky endpoint's event %d is %s %s, want %s %s", i, gotFlaky[i].Action, gotFlaky[i].ID, want[i].Action, want[i].ID)
		}
	}

	// The filtered endpoint got manifest pushes and the delete only.
	filteredGot := manifestsOnly.WaitFor(t, 4)
	var actions []string
	for _, ev := range filteredGot {
		actions = append(actions, ev.Action+":"+ev.Target.Tag)
	}
	if want := []string{"push:v1", "push:a", "push:b", "delete:"}; !slices.Equal(actions, want) {
		t.Errorf("filtered endpoint got %v, want %v", actions, want)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// An endpoint that never answers holds one batch and up to maxqueue
// events; pushes go on at their pace, and the rest are dropped, counted.
func TestHangingEndpointDoesNotSlowPushes(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	ep := endpoint("hang", srv.URL)
	ep.Timeout, ep.MaxQueue, ep.MaxBatch = time.Minute, 2, 1
	addr, _ := notifyingServer(t, ep)

	start := time.Now()
	for i := range 3 {
		ref, _ := name.ParseReference(fmt.Sprintf("%s/team/app:v%d", addr, i), name.Insecure)
		if err := remote.Write(ref, must(random.Image(256, 2)), alice); err != nil {
			t.Fatal(err)
		}
	}
	// 12 events against a delivery that would take a minute.
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("3 pushes took %s", took)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`lading_notifications_events_total{endpoint="hang",outcome="dropped"} 9`,
		`lading_notifications_events_total{endpoint="hang",outcome="delivered"} 0`,
		`lading_notifications_queued_events{endpoint="hang"} 2`,
		`lading_notifications_last_success_timestamp_seconds{endpoint="hang"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
