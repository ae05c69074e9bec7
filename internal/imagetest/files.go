package imagetest

import (
	"archive/tar"
	"io"
	"testing"
)

// File is one entry of a tar stream, with what it holds.
type File struct {
	*tar.Header
	Data []byte
}

// Files reads the entries of a tar stream in order: a layer's, or a whole
// image's as mutate.Extract flattens it.
func Files(t testing.TB, r io.Reader) []File {
	t.Helper()
	var files []File
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, File{h, data})
	}
}
