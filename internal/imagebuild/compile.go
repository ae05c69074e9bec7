package imagebuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Package is what Compile builds.
const Package = "github.com/lading-registry/lading/cmd/lading"

// Compile builds lading for p into out: static (no cgo, so it runs on a
// base without a C library), with no path of this machine in it
// (-trimpath), and with meta's version and commit linked in where
// cmd/lading/version.go reads them.
func Compile(ctx context.Context, dir string, p v1.Platform, meta Metadata, out string) error {
	for _, v := range []string{meta.Version, meta.Commit} {
		// -ldflags is split at spaces and quotes.
		if v == "" || strings.ContainsAny(v, " \t\n'\"") {
			return fmt.Errorf("version and commit must be single words: %q", v)
		}
	}
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", meta.Version, meta.Commit)
	// -buildvcs=false: the commit is linked in, and a build in a copy
	// without .git must give the same bytes.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, Package)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), goEnv(p)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %v\n%s", p, err, b)
	}
	return nil
}

// goEnv is what selects p's code generation and nothing else: GOFLAGS
// and the microarchitecture levels of this machine's environment would
// change the binary, and an image must run on every CPU of its platform.
func goEnv(p v1.Platform) []string {
	goarm := ""
	if p.Architecture == "arm" {
		goarm = strings.TrimPrefix(p.Variant, "v")
	}
	return []string{"CGO_ENABLED=0", "GOFLAGS=", "GOOS=" + p.OS, "GOARCH=" + p.Architecture,
		"GOAMD64=v1", "GOARM64=v8.0", "GOARM=" + goarm}
}
