package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
)

func TestFormatMarker(t *testing.T) {
	for name, mk := range manifestDrivers {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			drv := mk(t)
			// A reader leaves a store without a marker as it is.
			if err := CheckFormat(ctx, drv, false); err != nil {
				t.Fatal(err)
			}
			if _, err := drv.GetContent(ctx, formatPath); !driver.IsNotFound(err) {
				t.Fatalf("a check without write wrote the marker: %v", err)
			}
			if err := CheckFormat(ctx, drv, true); err != nil {
				t.Fatal(err)
			}
			if b, err := drv.GetContent(ctx, formatPath); err != nil || string(b) != "{\"format\":1}\n" {
				t.Fatalf("marker %q, %v", b, err)
			}
			if err := CheckFormat(ctx, drv, true); err != nil {
				t.Fatalf("a store of this format refused: %v", err)
			}
			for content, want := range map[string]error{
				`{"format":2}`:    ErrNewerFormat,
				`{"format":0}`:    ErrFormat,
				"<html>":          ErrFormat,
				`{"version":"1"}`: ErrFormat,
			} {
				if err := drv.PutContent(ctx, formatPath, []byte(content)); err != nil {
					t.Fatal(err)
				}
				for _, write := range []bool{false, true} {
					if err := CheckFormat(ctx, drv, write); !errors.Is(err, want) {
						t.Errorf("marker %s (write %v): %v, want %v", content, write, err, want)
					}
				}
				if b, _ := drv.GetContent(ctx, formatPath); string(b) != content {
					t.Errorf("marker %s rewritten as %s", content, b)
				}
			}
		})
	}
}
