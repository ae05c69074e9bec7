package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/distimport"
	"github.com/lading-registry/lading/internal/bytesize"
	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/registry"
)

// patterns is a repeatable flag.
type patterns []string

func (p *patterns) String() string { return strings.Join(*p, ",") }

func (p *patterns) Set(v string) error {
	if _, err := glob.Compile(v); err != nil {
		return err
	}
	*p = append(*p, v)
	return nil
}

// runImport copies a CNCF Distribution storage tree into the store. Its
// exit status is 0 when everything was imported, 1 when something was not
// (each problem is on stderr) or the run stopped, 2 for a mistake in the
// command line or configuration.
func runImport(args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCommand("lading import", 1, stderr)
	cmd.operand = "DISTRIBUTION_ROOT (Distribution's storage.filesystem.rootdirectory)"
	dryRun := cmd.fs.Bool("dry-run", false, "read and verify the source, say what would be imported, and write nothing")
	var repos patterns
	cmd.fs.Var(&repos, "repository", "import only the repositories this `glob` matches (team/* is team/app, team/** also team/app/web; repeatable)")
	var src *distimport.Source
	cmd.check = func() (err error) {
		src, err = distimport.Open(cmd.arg)
		return err
	}
	return cmd.run(args, func(ctx context.Context, _ *config.Config, reg *registry.Registry) int {
		return importTree(ctx, reg, src, distimport.Options{DryRun: *dryRun, Repositories: repos}, stdout, stderr)
	})
}

// importTree runs one import and prints a line per repository, the
// problems, and a summary.
func importTree(ctx context.Context, reg *registry.Registry, src *distimport.Source, opts distimport.Options, stdout, stderr io.Writer) int {
	opts.Problem = func(p distimport.Problem) {
		fmt.Fprintf(stderr, "lading import: %s\n", p)
	}
	opts.Done = func(r distimport.RepositoryReport) {
		fmt.Fprintf(stdout, "%s: %s\n", r.Name, describeCounts(r, opts.DryRun))
	}
	rep, err := distimport.Import(ctx, reg, src, opts)
	prefix := "imported"
	switch {
	case rep.DryRun:
		prefix = "would import"
	case err != nil:
		prefix = "stopped; imported so far"
	}
	fmt.Fprintf(stdout, "%s %d repositories from %s: %s; %d problems\n", prefix, rep.Repositories, src.Dir, describeCounts(rep.Total, rep.DryRun), rep.Problems)
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "lading import: interrupted; run it again to go on")
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "lading import: %v\n", err)
		return 1
	case rep.Problems > 0:
		return 1
	}
	return 0
}

func describeCounts(r distimport.RepositoryReport, dryRun bool) string {
	copied, added, set := "copied", "added", "set"
	if dryRun {
		copied, added, set = "to copy", "to add", "to set"
	}
	b, m, t := r.Blobs, r.Manifests, r.Tags
	return fmt.Sprintf("blobs %d %s (%s), %d linked, %d present, %d skipped; manifests %d %s, %d present, %d skipped; tags %d %s, %d present, %d skipped",
		b.Added, copied, bytesize.Format(r.Bytes), b.Linked, b.Present, b.Failed,
		m.Added, added, m.Present, m.Failed,
		t.Added, set, t.Present, t.Failed)
}
