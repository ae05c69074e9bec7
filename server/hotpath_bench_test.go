package server

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

func BenchmarkParseRange(b *testing.B) {
	const size = 1 << 30
	for _, h := range []string{"", "bytes=536870912-537919487", "bytes=-1048576", "bytes=0-"} {
		b.Run(strconv.Quote(h), func(b *testing.B) {
			for b.Loop() {
				if _, _, kind := parseRange(h, size); kind == rangeUnsatisfiable {
					b.Fatal("unsatisfiable")
				}
			}
		})
	}
}

func BenchmarkParseContentRange(b *testing.B) {
	for _, h := range []string{"16777216-33554431", "bytes 16777216-33554431/*"} {
		b.Run(strconv.Quote(h), func(b *testing.B) {
			for b.Loop() {
				if _, _, ok := parseContentRange(h); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}

// The BenchmarkServe* benchmarks run the HTTP layer over loopback on the
// filesystem driver, as `lading serve` does, so that
//
//	go test ./server -run - -bench Serve -cpuprofile cpu.out
//	go tool pprof -top server.test cpu.out
//
// profiles a push, a pull or small blobs end to end. LADING_BENCH_DIR puts
// the data on the disk under test.
func benchServer(b *testing.B) *httptest.Server {
	b.Helper()
	dir := testenv.BenchDir(b)
	fsd, err := filesystem.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	// Logs are formatted and dropped, so their cost stays in the profile.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.New(driver.Instrument(fsd, nil), registry.Options{Logger: log})
	srv := httptest.NewServer(logging.AccessLog(log, New(reg, Options{Logger: log}), RouteLabels))
	b.Cleanup(srv.Close)
	return srv
}

func benchDo(b *testing.B, req *http.Request, want int) *http.Response {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d, want %d", req.Method, req.URL, resp.StatusCode, want)
	}
	return resp
}

// benchPush uploads p as POST then PUT with the body.
func benchPush(b *testing.B, base string, p []byte) digest.Digest {
	d := digest.FromBytes(p)
	req, _ := http.NewRequest(http.MethodPost, base+"/v2/bench/serve/blobs/uploads/", nil)
	loc := benchDo(b, req, http.StatusAccepted).Header.Get("Location")
	req, _ = http.NewRequest(http.MethodPut, base+loc+"?digest="+d.String(), bytes.NewReader(p))
	req.Header.Set("Content-Type", "application/octet-stream")
	benchDo(b, req, http.StatusCreated)
	return d
}

func BenchmarkServePush64MiB(b *testing.B) {
	srv := benchServer(b)
	p := make([]byte, 64<<20)
	rand.Read(p)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		b.StopTimer()
		rand.Read(p[:16]) // a blob the registry has not seen
		b.StartTimer()
		benchPush(b, srv.URL, p)
	}
}

func BenchmarkServePull64MiB(b *testing.B) {
	srv := benchServer(b)
	p := make([]byte, 64<<20)
	rand.Read(p)
	d := benchPush(b, srv.URL, p)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/bench/serve/blobs/"+d.String(), nil)
		benchDo(b, req, http.StatusOK)
	}
}

// BenchmarkServeSmallBlobs pushes 4 KiB blobs 32 at a time (on 2 cores).
func BenchmarkServeSmallBlobs(b *testing.B) {
	srv := benchServer(b)
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.SetBytes(4 << 10)
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 4<<10)
		for pb.Next() {
			rand.Read(p)
			benchPush(b, srv.URL, p)
		}
	})
}

// BenchmarkServeHeadBlob HEADs one small blob, 32 requests at a time: the
// per-request cost of the HTTP layer, routing, logging and a link lookup.
func BenchmarkServeHeadBlob(b *testing.B) {
	srv := benchServer(b)
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 64
	p := make([]byte, 4<<10)
	rand.Read(p)
	d := benchPush(b, srv.URL, p)
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodHead, srv.URL+"/v2/bench/serve/blobs/"+d.String(), nil)
			benchDo(b, req, http.StatusOK)
		}
	})
}
