package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// TestGCScale measures a collection over 100,000 blobs in 10,000 manifests
// (100 repositories of 100 manifests, each with a config and 8 layers), half
// of the manifests untagged, on the filesystem driver. It runs only with
// LADING_GC_SCALE=1; the collection runs in a child process so its peak
// memory is its own. LADING_GC_SCALE_REPOS=n writes n repositories instead
// of 100 (1000: a million blobs), LADING_GC_SCALE_DIR=dir writes the store
// there, and LADING_GC_SCALE_WRITE_ONLY=1 stops after writing it (to time
// `lading gc --root dir` itself).
//
//	LADING_GC_SCALE=1 go test ./registry -run TestGCScale -v
func TestGCScale(t *testing.T) {
	if root := os.Getenv("LADING_GC_SCALE_CHILD"); root != "" {
		scaleChild(t, root)
		return
	}
	if os.Getenv("LADING_GC_SCALE") == "" {
		t.Skip("set LADING_GC_SCALE=1 to measure the collector at scale")
	}
	root := os.Getenv("LADING_GC_SCALE_DIR")
	if root == "" {
		root = t.TempDir()
	}
	repos, perRepo, blobsPer := 100, 100, 8
	if n, err := strconv.Atoi(os.Getenv("LADING_GC_SCALE_REPOS")); err == nil && n > 0 {
		repos = n
	}
	start := time.Now()
	writeScaleStore(t, root, repos, perRepo, blobsPer)
	t.Logf("wrote %d manifests and %d blobs in %v", repos*perRepo, repos*perRepo*(blobsPer+2), time.Since(start).Round(time.Millisecond))
	if os.Getenv("LADING_GC_SCALE_WRITE_ONLY") != "" {
		return
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestGCScale$", "-test.v")
	cmd.Env = append(os.Environ(), "LADING_GC_SCALE_CHILD="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "gc:") {
			t.Log(strings.TrimSpace(line))
		}
	}
	t.Logf("child peak RSS %.1f MiB, user %v, system %v", float64(ru.Maxrss)/1024,
		time.Duration(ru.Utime.Nano()).Round(time.Millisecond), time.Duration(ru.Stime.Nano()).Round(time.Millisecond))
}

func scaleChild(t *testing.T, root string) {
	fsd, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	reg := New(driver.Instrument(fsd, nil), Options{})
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	rep, err := reg.CollectGarbage(context.Background(), GCOptions{DeleteUntagged: true, Window: time.Millisecond, TempDir: t.TempDir()})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gc: %v; removed %d manifests, %d links, %d blobs (%d bytes); peak heap in use %.1f MiB",
		rep.Duration.Round(time.Millisecond), rep.ManifestsRemoved, rep.LinksRemoved, rep.BlobsRemoved, rep.BytesReclaimed,
		float64(peak.Load())/(1<<20))
}

// writeScaleStore lays the store out with plain file writes, which is much
// faster than pushing through the registry and yields the same layout.
func writeScaleStore(t *testing.T, root string, repos, perRepo, blobsPer int) {
	write := func(p string, b []byte) {
		file := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	for r := range repos {
		name := fmt.Sprintf("org%02d/app%03d", r%10, r)
		write(catalogPath(name), nil)
		for m := range perRepo {
			blob := func(i int) v1.Descriptor {
				content := []byte(name + "/" + strconv.Itoa(m) + "/" + strconv.Itoa(i))
				d := digest.FromBytes(content)
				write(blobPath(d), content)
				write(layerLinkPath(name, d), []byte(strconv.Itoa(len(content))))
				return v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: d, Size: int64(len(content))}
			}
			img := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: blob(-1)}
			img.Config.MediaType = v1.MediaTypeImageConfig
			for i := range blobsPer {
				img.Layers = append(img.Layers, blob(i))
			}
			payload, _ := json.Marshal(img)
			d := digest.FromBytes(payload)
			write(blobPath(d), payload)
			write(layerLinkPath(name, d), []byte(strconv.Itoa(len(payload))))
			rec, _ := json.Marshal(manifestRecord{Descriptor: v1.Descriptor{MediaType: img.MediaType, Digest: d, Size: int64(len(payload))}})
			write(manifestLinkPath(name, d), rec)
			if m%2 == 0 {
				tag := "v" + strconv.Itoa(m)
				write(tagRefPath(name, d, tag), nil)
				write(tagPath(name, tag), []byte(d))
			}
		}
	}
	// Everything is older than any grace.
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			err = os.Chtimes(p, old, old)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
