package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/bytesize"
	"github.com/lading-registry/lading/registry"
)

// runFsck checks the store. Its exit status tells scripts apart what
// they act on differently: 1 when problems remain (found and not
// repaired, what could not be read among them), 3 when the check could
// not run or finish (the store could not be opened, or the storage itself
// failed: unreachable, full, read-only), 2 for a mistake in the command
// line or configuration.
func runFsck(args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCommand("lading fsck", fsckFailed, stderr)
	repair := cmd.fs.Bool("repair", false, "fix what can be fixed without losing anything readable (dangling tags and links, corrupt blobs, lost links to the stored blobs of a manifest, corrupt manifest records and referrer entries, lost catalog entries, a collection left running by a killed collector)")
	return cmd.run(args, func(ctx context.Context, cfg *config.Config, reg *registry.Registry) int {
		return check(ctx, reg, registry.FsckOptions{Repair: *repair, Mirror: cfg.Proxy.RemoteURL != ""}, stdout, stderr)
	})
}

// fsckFailed is fsck's exit status for a check that could not run or finish.
const fsckFailed = 3

// check runs fsck and prints what it finds.
func check(ctx context.Context, reg *registry.Registry, opts registry.FsckOptions, stdout, stderr io.Writer) int {
	progress := newProgress(stderr)
	opts.Problem = func(p registry.FsckProblem) {
		progress.clear()
		fmt.Fprintln(stdout, describeProblem(p))
	}
	opts.Progress = func(r registry.FsckReport) {
		progress.show("blobs %d (%s)  repositories %d  problems %d", r.Blobs, bytesize.Format(r.Bytes), r.Repositories, r.Problems)
	}
	rep, err := reg.Fsck(ctx, opts)
	progress.clear()
	if err != nil {
		fmt.Fprintf(stderr, "lading fsck: %v\n", err)
		return fsckFailed
	}
	fmt.Fprintf(stdout, "checked %d blobs (%s), %d repositories, %d manifests, %d links, %d tags in %v: %d problems, %d repaired\n",
		rep.Blobs, bytesize.Format(rep.Bytes), rep.Repositories, rep.Manifests, rep.Links, rep.Tags,
		rep.Duration.Round(time.Millisecond), rep.Problems, rep.Repaired)
	if rep.Problems > rep.Repaired {
		return 1
	}
	return 0
}

func describeProblem(p registry.FsckProblem) string {
	s := p.Kind + ": " + p.Path
	tags := strings.Join(p.Tags, ", ")
	var details []string
	if p.Detail != "" {
		details = append(details, p.Detail)
	}
	if tags != "" && !p.Repaired {
		details = append(details, "tagged "+tags+", which a repair removes")
	}
	if len(details) > 0 {
		s += " (" + strings.Join(details, "; ") + ")"
	}
	if p.Repaired {
		s += ": repaired"
		if tags != "" {
			s += ", removing its tags " + tags + " (push them again to restore them)"
		}
	}
	return s
}
