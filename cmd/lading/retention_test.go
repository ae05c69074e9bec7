package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/internal/imagetest"
	"github.com/lading-registry/lading/registry"
)

// retentionAddr is this test's own port, apart from those of the others.
const retentionAddr = "127.0.0.1:5837"

// lading serve applies its retention rules by itself: the old tags go,
// the others pull as pushed, and the metrics count what went. The
// interval is a second, which the configuration refuses (under a minute)
// but serve, given the configuration as loaded, runs.
func TestServeAppliesRetention(t *testing.T) {
	cfg := testConfig(filepath.Join(t.TempDir(), "data"), retentionAddr)
	cfg.HTTP.DrainTimeout = time.Second
	cfg.Retention = config.Retention{Interval: time.Second, Rules: []config.RetentionRule{
		{Repository: "e2e/app", Tags: "pr-*", Keep: 2},
		// e2e/app is the first rule's: by this one every tag of it would go.
		{Repository: "e2e/**", OlderThan: time.Nanosecond},
	}}
	addr := serving(t, cfg, discard)

	pushed := map[string]v1.Image{}
	push := func(tag string) {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(addr + "/" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatalf("push %s: %v", tag, err)
		}
		pushed[tag] = img
		time.Sleep(20 * time.Millisecond) // a file's time moves by the kernel's tick
	}
	for _, tag := range []string{"e2e/app:latest", "e2e/app:pr-1", "e2e/app:pr-2", "e2e/app:pr-3", "e2e/app:pr-4", "e2e/other:v1"} {
		push(tag)
	}

	// Runs may come between the pushes: whenever they do, pr-1 and pr-2
	// go, and e2e/other:v1.
	removed := regexp.MustCompile(`(?m)^lading_retention_tags_removed_total (\S+)$`)
	deadline := time.Now().Add(20 * time.Second)
	for n := 0.0; n != 3; {
		if time.Now().After(deadline) {
			t.Fatalf("tags removed by retention after 20s: %v, want 3", n)
		}
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := removed.FindSubmatch(body); m != nil {
			n, _ = strconv.ParseFloat(string(m[1]), 64)
		}
		if n > 3 {
			t.Fatalf("retention removed %v tags, want 3", n)
		}
	}
	for _, gone := range []string{"e2e/app:pr-1", "e2e/app:pr-2", "e2e/other:v1"} {
		ref, _ := name.ParseReference(addr + "/" + gone)
		var terr *transport.Error
		if _, err := remote.Head(ref); !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %v, want 404", gone, err)
		}
	}
	for _, kept := range []string{"e2e/app:latest", "e2e/app:pr-3", "e2e/app:pr-4"} {
		ref, _ := name.ParseReference(addr + "/" + kept)
		got, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("%s: %v", kept, err)
		}
		imagetest.Same(t, pushed[kept], got)
	}
}

// A server reports the last successful run as the storage records it, any
// replica's, from its start: a restart does not read as retention never
// having run, which the documented alert would take for a stall.
func TestServeReportsTheLastRetentionRunFromTheStart(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	all, _ := glob.Compile("**")
	if _, err := storeRegistry(t, root, registry.Options{}).ApplyRetention(t.Context(), registry.RetentionOptions{
		Rules: []registry.RetentionRule{{Repositories: all, Prune: registry.PruneOptions{Keep: 1}}}}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(root, "127.0.0.1:0")
	cfg.Retention = config.Retention{Interval: time.Hour, Rules: []config.RetentionRule{{Repository: "**", Keep: 1}}}
	addr := serving(t, cfg, discard)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^lading_retention_last_success_timestamp_seconds (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no lading_retention_last_success_timestamp_seconds")
	}
	if at, _ := strconv.ParseFloat(string(m[1]), 64); time.Since(time.Unix(int64(at), 0)) > time.Minute {
		t.Errorf("last success at %s, want the run just before the start", m[1])
	}
}

// TestServeReportsWhatTheLastCollectionLeftStored starts serve on a store
// a collection ran over: the store's size is in the metrics from the
// start. On a store never collected the series are absent, not 0.
func TestServeReportsWhatTheLastCollectionLeftStored(t *testing.T) {
	metricsOf := func(root string) string {
		addr := serving(t, testConfig(root, "127.0.0.1:0"), discard)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if body := metricsOf(filepath.Join(t.TempDir(), "data")); strings.Contains(body, "lading_gc_stored_") {
		t.Errorf("stored series before any collection:\n%s", regexp.MustCompile(`(?m)^lading_gc_stored_.*$`).FindAllString(body, -1))
	}

	root := filepath.Join(t.TempDir(), "data")
	reg := storeRegistry(t, root, registry.Options{})
	repo, err := reg.Repository("team/app")
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("a layer of 17 B.\n")
	if _, err := repo.Blobs().Put(t.Context(), digest.FromBytes(content), bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	rep, err := reg.CollectGarbage(t.Context(), registry.GCOptions{Grace: time.Hour, Window: time.Millisecond, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	body := metricsOf(root)
	for name, want := range map[string]string{"lading_gc_stored_blobs": "1", "lading_gc_stored_bytes": "17"} {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil || m[1] != want || rep.Stored.Bytes != 17 {
			t.Errorf("%s: %v, want %s (the run left %+v)", name, m, want, rep.Stored)
		}
	}
}
