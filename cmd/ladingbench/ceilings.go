package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// ceilings are what the machine itself allows, in the units of the
// benchmark, for the targets stated as a share of them.
type ceilings struct {
	Machine machine `json:"machine"`
	Size    int64   `json:"size"`
	// SHA256 is hashing speed in memory, one core.
	SHA256 float64 `json:"sha256MBps"`
	// DiskWriteFsync writes Size bytes to a new file and fsyncs it; the
	// files of all rounds are kept, so, as with a registry storing new
	// blobs, the page cache and the disk get space never used before.
	DiskWriteFsync float64 `json:"diskWriteFsyncMBps"`
	// DiskRewriteFsync does the same after deleting the previous file, so
	// the pages and blocks just freed are used again. On a virtual machine
	// this can be several times faster than DiskWriteFsync.
	DiskRewriteFsync float64 `json:"diskRewriteFsyncMBps"`
	// HashWriteFsync does both in one goroutine, as a naive server would.
	HashWriteFsync float64 `json:"sha256WriteFsyncMBps"`
	// FileServer is a GET of the same file from http.ServeContent over
	// loopback, which reaches sendfile(2): the pull ceiling.
	FileServer float64 `json:"fileServerMBps"`
	// FileServerCopy is the same with sendfile hidden, so net/http copies
	// through user space in 32 KiB writes, as servers whose blob reader is
	// not an *os.File do.
	FileServerCopy float64 `json:"fileServerCopyMBps"`
	// HeadOps is HEAD requests per second, 32 at a time, against a Go
	// server that answers with headers only: the most requests this client
	// and net/http can exchange on the machine, the ceiling of any
	// small-object rate.
	HeadOps float64 `json:"headOpsPerSecond"`
}

func (c *ceilings) summary() string {
	return fmt.Sprintf("SHA-256 %.0f MB/s; disk write+fsync of a new file %.0f MB/s, of a file rewritten over a deleted one %.0f MB/s; "+
		"SHA-256+write+fsync %.0f MB/s; plain Go file server GET %.0f MB/s with sendfile, %.0f MB/s without (%s file); "+
		"HEADs of an empty Go handler, 32 at a time, %.0f/s",
		c.SHA256, c.DiskWriteFsync, c.DiskRewriteFsync, c.HashWriteFsync, c.FileServer, c.FileServerCopy, sizeString(c.Size), c.HeadOps)
}

func runCeilings(args []string) error {
	fs := flag.NewFlagSet("ladingbench ceilings", flag.ContinueOnError)
	dir := fs.String("dir", os.TempDir(), "`directory` on the disk under test")
	size := sizeFlag(fs, "size", 1<<30, "file `size`")
	rounds := fs.Int("rounds", 3, "repetitions; the median is reported")
	jsonOut := fs.String("json", "", "write the ceilings as JSON to `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(*dir, "ladingbench-ceilings")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	c := &ceilings{Machine: describeMachine(tmp), Size: *size}
	rewritten := filepath.Join(tmp, "rewritten")

	// The first rewrite too writes over a file just deleted.
	if _, err := measureWrite(rewritten, content{seed: 1, size: *size}, false); err != nil {
		return err
	}
	var shas, news, rewrites, both, serves, copies, heads []float64
	for r := range *rounds {
		ct := content{seed: uint64(r + 1), size: *size}
		shas = append(shas, measureSHA256(ct))
		kept := filepath.Join(tmp, fmt.Sprintf("new%d", r))
		steps := []struct {
			into *[]float64
			run  func() (float64, error)
		}{
			{&news, func() (float64, error) { return measureWrite(kept, ct, false) }},
			{&rewrites, func() (float64, error) { return measureWrite(rewritten, ct, false) }},
			{&both, func() (float64, error) { return measureWrite(rewritten, ct, true) }},
			{&serves, func() (float64, error) { return measureFileServer(kept, *size, true) }},
			{&copies, func() (float64, error) { return measureFileServer(kept, *size, false) }},
			{&heads, measureHeadOps},
		}
		for _, st := range steps {
			v, err := st.run()
			if err != nil {
				return err
			}
			*st.into = append(*st.into, v)
		}
		fmt.Fprintf(os.Stderr, "ceilings round %d: sha256 %.0f, new file write+fsync %.0f, rewrite+fsync %.0f, sha256+rewrite+fsync %.0f, file server %.0f (copy %.0f) MB/s, %.0f HEAD/s\n",
			r+1, shas[r], news[r], rewrites[r], both[r], serves[r], copies[r], heads[r])
	}
	c.SHA256, c.DiskWriteFsync, c.DiskRewriteFsync, c.HashWriteFsync = median(shas), median(news), median(rewrites), median(both)
	c.FileServer, c.FileServerCopy, c.HeadOps = median(serves), median(copies), median(heads)
	c.Machine.LoadAfter = loadAverage()
	fmt.Printf("%s\nCeilings: %s\n", c.Machine.summary(), c.summary())
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(c, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// measureSHA256 hashes ct from memory: a 16 MiB buffer, so the generator
// is not in the measure.
func measureSHA256(ct content) float64 {
	buf := make([]byte, 16<<20)
	ct.readAt(buf, 0)
	h := sha256.New()
	t0 := time.Now()
	for done := int64(0); done < ct.size; done += int64(len(buf)) {
		h.Write(buf[:min(int64(len(buf)), ct.size-done)])
	}
	h.Sum(nil)
	return mbps(ct.size, time.Since(t0))
}

// measureWrite writes ct to a new file in 16 MiB writes and fsyncs it,
// hashing on the way when hash is set.
func measureWrite(file string, ct content, hash bool) (float64, error) {
	os.Remove(file)
	buf := make([]byte, 16<<20)
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ct.readAt(buf, 0) // written again and again: no generator in the measure
	h := sha256.New()
	t0 := time.Now()
	for off := int64(0); off < ct.size; {
		n := int(min(int64(len(buf)), ct.size-off))
		if hash {
			h.Write(buf[:n])
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return 0, err
		}
		off += int64(n)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return mbps(ct.size, time.Since(t0)), nil
}

// loopbackServer serves h on a free loopback port until stop is called.
func loopbackServer(h http.Handler) (c *client, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	base := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	return newClient(base, newTransport()), func() { srv.Shutdown(context.Background()) }, nil
}

func measureHeadOps() (float64, error) {
	c, stop, err := loopbackServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
	}))
	if err != nil {
		return 0, err
	}
	defer stop()
	const n = 20000
	ws, closeWorkers := c.workers(32)
	defer closeWorkers()
	_, wall, err := repeatFor(context.Background(), 32, n, 0, func(ctx context.Context, w, _ int) error {
		_, err := ws[w].roundTrip(newRequest(ctx, http.MethodHead, c.url("/blob"), nil, 0), http.StatusOK)
		return err
	})
	return n / wall.Seconds(), err
}

// measureFileServer GETs file from a plain net/http server over loopback
// with the client the benchmark uses.
func measureFileServer(file string, size int64, sendfile bool) (float64, error) {
	c, stop, err := loopbackServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		var content io.ReadSeeker = f
		if !sendfile {
			content = struct{ io.ReadSeeker }{f} // no longer an *os.File
		}
		http.ServeContent(w, r, "", time.Time{}, content)
	}))
	if err != nil {
		return 0, err
	}
	defer stop()
	t0 := time.Now()
	resp, err := c.do(newRequest(context.Background(), http.MethodGet, c.url("/blob"), nil, 0), http.StatusOK)
	if err != nil {
		return 0, err
	}
	n, err := drain(resp.Body)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	return mbps(n, time.Since(t0)), err
}
