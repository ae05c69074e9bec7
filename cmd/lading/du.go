package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/bytesize"
	"github.com/lading-registry/lading/registry"
)

// runDu tells the space each repository uses, and the store's own. Its
// exit status is 0 when the report is printed (entries it could not read
// are named on stderr and counted in it), 1 when the count could not run
// or finish, 2 for a mistake in the command line or configuration.
func runDu(args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCommand("lading du", 1, stderr)
	var repos patterns
	cmd.fs.Var(&repos, "repository", "report only the repositories this `glob` matches (team/* is team/app, team/** also team/app/web; repeatable)")
	asJSON := cmd.fs.Bool("json", false, "print the report as JSON")
	top := cmd.fs.Int("top", 0, "print only the `n` repositories that link the most (0: all)")
	cmd.check = func() error {
		if *top < 0 {
			return fmt.Errorf("--top must be 0 or more (got %d)", *top)
		}
		return nil
	}
	return cmd.run(args, func(ctx context.Context, _ *config.Config, reg *registry.Registry) int {
		return du(ctx, reg, registry.UsageOptions{Repositories: repos}, *top, *asJSON, stdout, stderr)
	})
}

// duJSON is the report as --json prints it: the repositories --top left
// out are counted, not listed.
type duJSON struct {
	registry.UsageReport
	MoreRepositories int `json:"moreRepositories"`
}

// du counts the usage and prints it.
func du(ctx context.Context, reg *registry.Registry, opts registry.UsageOptions, top int, asJSON bool, stdout, stderr io.Writer) int {
	progress := newProgress(stderr)
	opts.Problem = func(p registry.UsageProblem) {
		progress.clear()
		fmt.Fprintf(stderr, "lading du: passed over %s: %s\n", p.Path, p.Detail)
	}
	opts.Progress = func(p registry.UsageProgress) {
		progress.show("blobs %d  repositories %d  links %d", p.Blobs, p.Repositories, p.Links)
	}
	rep, err := reg.Usage(ctx, opts)
	progress.clear()
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "lading du: interrupted")
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "lading du: %v\n", err)
		return 1
	}
	more := 0
	if top > 0 && len(rep.Repositories) > top {
		more = len(rep.Repositories) - top
		rep.Repositories = rep.Repositories[:top]
	}
	if rep.Damaged > 0 {
		fmt.Fprintf(stderr, "lading du: %d entries passed over, named above (lading fsck tells more)\n", rep.Damaged)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(duJSON{UsageReport: rep, MoreRepositories: more}); err != nil {
			fmt.Fprintf(stderr, "lading du: %v\n", err)
			return 1
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tLINKED\tBLOBS\tEXCLUSIVE\tBLOBS\tMANIFESTS\tTAGS")
	for _, r := range rep.Repositories {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\n", r.Name, bytesize.Format(r.LinkedBytes), r.LinkedBlobs,
			bytesize.Format(r.ExclusiveBytes), r.ExclusiveBlobs, r.Manifests, r.Tags)
	}
	tw.Flush()
	if more > 0 {
		fmt.Fprintf(stdout, "(%d more repositories)\n", more)
	}
	fmt.Fprintf(stdout, "stored: %d blobs (%s), each once; linked by no repository: %d blobs (%s)\n",
		rep.StoredBlobs, bytesize.Format(rep.StoredBytes), rep.UnlinkedBlobs, bytesize.Format(rep.UnlinkedBytes))
	return 0
}
