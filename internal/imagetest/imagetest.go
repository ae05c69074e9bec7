// Package imagetest compares images in tests: what a registry serves back
// must be what was pushed, byte for byte, not merely an equivalent image.
package imagetest

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Same fails t unless got, typically read back from a registry, is want
// byte for byte.
func Same(t testing.TB, want, got v1.Image) {
	t.Helper()
	if err := Diff(want, got); err != nil {
		t.Fatal(err)
	}
}

// Diff describes the first difference between want and got in the raw
// manifest, the raw config and every compressed layer, or returns nil when
// there is none. An error reading either image counts as a difference.
func Diff(want, got v1.Image) error {
	for _, part := range []struct {
		name      string
		want, got func() ([]byte, error)
	}{
		{"manifest", want.RawManifest, got.RawManifest},
		{"config", want.RawConfigFile, got.RawConfigFile},
	} {
		w, g, err := readBoth(part.name, part.want, part.got)
		if err != nil {
			return err
		}
		if !bytes.Equal(w, g) {
			return fmt.Errorf("%s differs:\nwant %s\ngot  %s", part.name, w, g)
		}
	}
	wl, err := want.Layers()
	if err != nil {
		return fmt.Errorf("want's layers: %w", err)
	}
	gl, err := got.Layers()
	if err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	if len(gl) != len(wl) {
		return fmt.Errorf("%d layers, want %d", len(gl), len(wl))
	}
	for i := range wl {
		w, g, err := readBoth(fmt.Sprintf("layer %d", i), compressed(wl[i]), compressed(gl[i]))
		if err != nil {
			return err
		}
		if !bytes.Equal(w, g) {
			return fmt.Errorf("layer %d bytes differ", i)
		}
	}
	return nil
}

// readBoth reads one part of both images, saying which side failed.
func readBoth(what string, want, got func() ([]byte, error)) ([]byte, []byte, error) {
	w, err := want()
	if err != nil {
		return nil, nil, fmt.Errorf("want's %s: %w", what, err)
	}
	g, err := got()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	return w, g, nil
}

func compressed(l v1.Layer) func() ([]byte, error) {
	return func() ([]byte, error) {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
}
