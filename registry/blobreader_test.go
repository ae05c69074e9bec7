package registry_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func TestBlobReaderSeek(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"filesystem", "inmemory"} {
		t.Run(name, func(t *testing.T) {
			reg := registry.New(inmemory.New(), registry.Options{})
			if name == "filesystem" {
				reg = newFSRegistry(t, t.TempDir())
			}
			repo := repository(t, reg, "r")
			data := randomBytes(t, 1000)
			d := digest.FromBytes(data)
			if _, err := repo.Blobs().Put(ctx, d, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			const size, mid = 1000, 500
			for _, tc := range []struct {
				name   string
				start  int64 // position before the seek
				offset int64
				whence int
				want   int64 // -1: error, position unchanged
			}{
				{"start 0", mid, 0, io.SeekStart, 0},
				{"start middle", 0, mid, io.SeekStart, mid},
				{"start size", 0, size, io.SeekStart, size},
				{"start size+1", mid, size + 1, io.SeekStart, -1},
				{"start negative", mid, -1, io.SeekStart, -1},
				{"current 0", mid, 0, io.SeekCurrent, mid},
				{"current to middle", 100, mid - 100, io.SeekCurrent, mid},
				{"current to size", mid, size - mid, io.SeekCurrent, size},
				{"current to size+1", mid, size - mid + 1, io.SeekCurrent, -1},
				{"current negative", mid, -mid - 1, io.SeekCurrent, -1},
				{"end 0", 0, 0, io.SeekEnd, size},
				{"end to middle", 0, mid - size, io.SeekEnd, mid},
				{"end to start", mid, -size, io.SeekEnd, 0},
				{"end +1", 0, 1, io.SeekEnd, -1},
				{"end negative", 0, -size - 1, io.SeekEnd, -1},
				{"bad whence", mid, 0, 7, -1},
			} {
				t.Run(tc.name, func(t *testing.T) {
					br, err := repo.Blobs().Open(ctx, d)
					if err != nil {
						t.Fatal(err)
					}
					defer br.Close()
					if _, err := br.Seek(tc.start, io.SeekStart); err != nil {
						t.Fatal(err)
					}
					// Read a byte first when possible, so seeks also move an open reader.
					pos := tc.start
					if pos < size {
						b := make([]byte, 1)
						if _, err := io.ReadFull(br, b); err != nil || b[0] != data[pos] {
							t.Fatalf("read at %d: %v", pos, err)
						}
						if _, err := br.Seek(tc.start, io.SeekStart); err != nil {
							t.Fatal(err)
						}
						pos = tc.start
					}
					got, err := br.Seek(tc.offset, tc.whence)
					if tc.want < 0 {
						if err == nil {
							t.Fatalf("seek gave %d, want an error", got)
						}
						if now, _ := br.Seek(0, io.SeekCurrent); now != pos {
							t.Fatalf("failed seek moved the position to %d", now)
						}
						return
					}
					if err != nil || got != tc.want {
						t.Fatalf("seek = %d, %v; want %d", got, err, tc.want)
					}
					rest, err := io.ReadAll(br)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(rest, data[tc.want:]) {
						t.Fatalf("read after seek to %d: %d bytes, wrong content", tc.want, len(rest))
					}
					if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
						t.Fatalf("read at end = %d, %v; want io.EOF", n, err)
					}
				})
			}
		})
	}
}

func TestBlobReaderCopyRange(t *testing.T) {
	ctx := context.Background()
	repo := repository(t, registry.New(inmemory.New(), registry.Options{}), "r")
	data := randomBytes(t, 1000)
	d := digest.FromBytes(data)
	if _, err := repo.Blobs().Put(ctx, d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	br, _ := repo.Blobs().Open(ctx, d)
	defer br.Close()
	var buf bytes.Buffer
	if n, err := br.CopyRange(&buf, 100, 250); err != nil || n != 250 || !bytes.Equal(buf.Bytes(), data[100:350]) {
		t.Fatalf("copy range = %d, %v", n, err)
	}
	for _, r := range [][2]int64{{-1, 10}, {0, 1001}, {999, 2}, {10, -1}} {
		if _, err := br.CopyRange(io.Discard, r[0], r[1]); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
}

// capWriter records the largest capacity of the slices written to it: the
// size of the buffer a copy went through.
type capWriter struct{ max int }

func (w *capWriter) Write(p []byte) (int, error) {
	w.max = max(w.max, cap(p))
	return len(p), nil
}

// A small range goes through a small buffer: a stalled reader of a small
// blob holds that buffer until its write ends.
func TestCopyOfASmallRangeHoldsASmallBuffer(t *testing.T) {
	ctx := context.Background()
	repo := repository(t, registry.New(inmemory.New(), registry.Options{}), "r")
	data := randomBytes(t, 200<<10)
	d := digest.FromBytes(data)
	if _, err := repo.Blobs().Put(ctx, d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	br, _ := repo.Blobs().Open(ctx, d)
	defer br.Close()
	for _, tc := range []struct{ length, most int64 }{{4 << 10, 64 << 10}, {64 << 10, 64 << 10}, {200 << 10, 1 << 20}} {
		var w capWriter
		if n, err := br.CopyRange(&w, 0, tc.length); err != nil || n != tc.length {
			t.Fatalf("copy of %d = %d, %v", tc.length, n, err)
		}
		if int64(w.max) > tc.most || w.max == 0 {
			t.Errorf("copy of %d bytes went through a buffer of %d, want at most %d", tc.length, w.max, tc.most)
		}
	}
}
