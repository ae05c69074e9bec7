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
	// DiskWriteFsync writes Size bytes to a new file and fsyncs it.
	DiskWriteFsync float64 `json:"diskWriteFsyncMBps"`
	// HashWriteFsync does both in one goroutine, as a naive server would.
	HashWriteFsync float64 `json:"sha256WriteFsyncMBps"`
	// FileServer is a GET of the same file from http.ServeContent over
	// loopback, which reaches sendfile(2): the pull ceiling.
	FileServer float64 `json:"fileServerMBps"`
}

func (c *ceilings) summary() string {
	return fmt.Sprintf("SHA-256 %.0f MB/s, disk write+fsync %.0f MB/s, SHA-256+write+fsync %.0f MB/s, plain Go file server GET %.0f MB/s (%s file)",
		c.SHA256, c.DiskWriteFsync, c.HashWriteFsync, c.FileServer, sizeString(c.Size))
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
	file := filepath.Join(tmp, "blob")

	var shas, disks, both, serves []float64
	for r := range *rounds {
		ct := content{seed: uint64(r + 1), size: *size}
		shas = append(shas, measureSHA256(ct))
		v, err := measureWrite(file, ct, false)
		if err != nil {
			return err
		}
		disks = append(disks, v)
		if v, err = measureWrite(file, ct, true); err != nil {
			return err
		}
		both = append(both, v)
		if v, err = measureFileServer(file, *size); err != nil {
			return err
		}
		serves = append(serves, v)
		fmt.Fprintf(os.Stderr, "ceilings round %d: sha256 %.0f, write+fsync %.0f, sha256+write+fsync %.0f, file server %.0f MB/s\n", r+1, shas[r], disks[r], both[r], serves[r])
	}
	c.SHA256, c.DiskWriteFsync, c.HashWriteFsync, c.FileServer = median(shas), median(disks), median(both), median(serves)
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
	h := sha256.New()
	t0 := time.Now()
	for off := int64(0); off < ct.size; {
		n := ct.readAt(buf, off)
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

// measureFileServer GETs file from a plain net/http server over loopback
// with the client the benchmark uses.
func measureFileServer(file string, size int64) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f)
	})}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	base := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	c := newClient(base, newTransport())
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
