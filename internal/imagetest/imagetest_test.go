package imagetest

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestDiff(t *testing.T) {
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := Diff(img, img); err != nil {
		t.Errorf("an image differs from itself: %v", err)
	}
	other, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if Diff(img, other) == nil {
		t.Error("two random images compare the same")
	}
	// Same layers, another config: only the config and the manifest differ.
	relabeled, err := mutate.Config(img, v1.Config{Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if Diff(img, relabeled) == nil {
		t.Error("a changed config goes unnoticed")
	}
}
