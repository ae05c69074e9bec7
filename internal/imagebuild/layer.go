package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// file is one entry of a layer: a folder when data is nil and dir is set.
type file struct {
	path     string // without the leading slash
	dir      bool
	mode     int64 // permission bits, sticky included
	uid, gid int
	data     []byte
}

// baseFiles are what every platform's image shares beneath the binary,
// so its layer is one blob for all of them.
func baseFiles(caCerts []byte) []file {
	dir := func(path string, mode int64) file { return file{path: path, dir: true, mode: mode} }
	return []file{
		dir("etc", 0o755),
		{path: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf(
			"root:x:0:0:root:/root:/sbin/nologin\nlading:x:%d:%d:lading:%s:/sbin/nologin\n", UID, GID, DataDir))},
		{path: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nlading:x:%d:\n", GID))},
		dir("etc/ssl", 0o755),
		dir("etc/ssl/certs", 0o755),
		{path: strings.TrimPrefix(CACerts, "/"), mode: 0o644, data: caCerts},
		// The collector spills its mark sets to the temporary folder.
		dir("tmp", 0o1777),
		dir("usr", 0o755),
		dir("usr/local", 0o755),
		dir("usr/local/bin", 0o755),
		dir("var", 0o755),
		dir("var/lib", 0o755),
		// 0750, as lading serve makes a root it creates.
		{path: strings.TrimPrefix(DataDir, "/"), dir: true, mode: 0o750, uid: UID, gid: GID},
	}
}

// layer writes files into a gzipped tar, sorted by path (a folder before
// what it holds) and each dated created, so the same files always give the
// same digest. It is compressed here, once, rather than at every read.
func layer(files []file, created time.Time) (v1.Layer, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.path, b.path) })
	var zipped bytes.Buffer
	// The gzip header's time and name stay empty.
	zw := gzip.NewWriter(&zipped)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		h := &tar.Header{
			Name:     f.path,
			Mode:     f.mode,
			Uid:      f.uid,
			Gid:      f.gid,
			ModTime:  created.UTC().Truncate(time.Second),
			Typeflag: tar.TypeReg,
			Size:     int64(len(f.data)),
			// USTAR: no PAX records carrying sub-second or access times.
			Format: tar.FormatUSTAR,
		}
		if f.dir {
			h.Name += "/"
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", f.path, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(zipped.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
}
