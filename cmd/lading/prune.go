package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/registry"
)

// tagPatterns is the repeatable --tags flag.
type tagPatterns []string

func (p *tagPatterns) String() string { return strings.Join(*p, ",") }

// Set takes one pattern or several separated by commas, as the retention
// rules' tags are written.
func (p *tagPatterns) Set(v string) error {
	patterns, err := glob.ParseTags(v)
	if err == nil && len(patterns) == 0 {
		err = errors.New("an empty tag pattern")
	}
	if err != nil {
		return err
	}
	*p = append(*p, patterns...)
	return nil
}

// age is the --older-than flag: a Go duration, or whole days ("30d"),
// the unit retention rules are thought in.
type age struct {
	d   time.Duration
	set bool
}

func (a *age) String() string { return a.d.String() }

func (a *age) Set(v string) error {
	d, err := config.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("%q: want a duration of 0 or more (720h, 90m) or whole days (30d)", v)
	}
	a.d, a.set = d, true
	return nil
}

// runPrune applies a retention rule to the tags of the repositories a
// pattern matches. Its exit status is 0 when the run completed, 1 when
// something failed (each failure is on stderr) or the run was stopped, 2
// for a mistake in the command line or configuration.
func runPrune(args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCommand("lading prune", 1, stderr)
	pattern := cmd.fs.String("repository", "", "prune the repositories this `glob` matches (team/* is team/app, team/** also team/app/web and team)")
	var tags tagPatterns
	cmd.fs.Var(&tags, "tags", "the rule covers the tags this path.Match `pattern` matches (repeatable; default *)")
	keep := cmd.fs.Int("keep", 0, "keep the `N` most recently pushed matched tags of each repository")
	var olderThan age
	cmd.fs.Var(&olderThan, "older-than", "remove only tags last pushed longer ago than this `duration` (720h, or 30d)")
	dryRun := cmd.fs.Bool("dry-run", false, "say what would be removed, and remove nothing")
	verbose := cmd.fs.Bool("verbose", false, "name each removed tag with its digest and age")
	gc := cmd.fs.Bool("gc", false, "then collect garbage with --untagged, as lading gc --untagged does (not in a dry run)")
	var repos glob.Glob
	cmd.check = func() (err error) {
		switch {
		case *pattern == "":
			return errors.New("--repository is required (a glob; ** for every repository)")
		case *keep < 0:
			return fmt.Errorf("--keep must be 0 or more (got %d)", *keep)
		case !flagSet(cmd.fs, "keep") && !olderThan.set:
			// A rule with neither would remove every matched tag.
			return errors.New("give --keep, --older-than or both: without them every matched tag would go")
		}
		repos, err = glob.Compile(*pattern)
		return err
	}
	return cmd.run(args, func(ctx context.Context, cfg *config.Config, reg *registry.Registry) int {
		if cfg.Tags.Immutable == "" && cmd.configFile == "" && os.Getenv(config.ConfigEnv) == "" {
			// The rules live in the servers' configuration, not in the
			// store: a run on --root alone cannot know them.
			fmt.Fprintln(stderr, "lading prune: no tags.immutable in force (no configuration file): give the servers' one (--config, or LADING_TAGS_IMMUTABLE) for their immutable tags to be kept")
		}
		p := pruner{reg: reg, stdout: stdout, stderr: stderr, verbose: *verbose,
			opts: registry.PruneOptions{Tags: tags, Keep: *keep, OlderThan: olderThan.d, DryRun: *dryRun}}
		status := p.run(ctx, repos)
		collecting := *gc && !*dryRun && status == 0
		p.summary(cfg.GC.Grace, *gc, collecting)
		if !collecting {
			return status
		}
		fmt.Fprintf(stdout, "collecting garbage with --untagged: untagged manifests and blobs younger than gc.grace (%v) stay for a later collection\n", cfg.GC.Grace)
		return collect(ctx, reg, registry.GCOptions{Grace: cfg.GC.Grace, DeleteUntagged: true, Window: registry.DefaultGCWindow}, stdout, stderr)
	})
}

// pruner is one run of lading prune over the store, and its totals.
type pruner struct {
	reg            *registry.Registry
	opts           registry.PruneOptions
	stdout, stderr io.Writer
	verbose        bool

	repositories, failed int
	matched, removed     int
	stopped              bool
}

// run prunes each repository repos matches, going on past one that
// fails, and stops at an interrupt.
func (p *pruner) run(ctx context.Context, repos glob.Glob) int {
	matches, err := p.reg.MatchRepositories(ctx, []glob.Glob{repos})
	if err != nil {
		return p.fail(ctx, "catalog", err)
	}
	status := 0
	for _, m := range matches {
		if ctx.Err() != nil {
			return p.fail(ctx, m.Name, ctx.Err())
		}
		if err := p.repository(ctx, m.Name); err != nil {
			status = p.fail(ctx, m.Name, err)
		}
	}
	return status
}

// repository prunes one repository and prints its line.
func (p *pruner) repository(ctx context.Context, name string) error {
	rep, err := p.reg.PruneRepository(ctx, name, p.opts)
	p.repositories++
	p.matched += rep.Matched
	p.removed += len(rep.Removed)
	verb, count := "removed", "removed"
	if p.opts.DryRun {
		verb, count = "would remove", "to remove"
	}
	line := fmt.Sprintf("%s: %d tags matched, %d kept by count, %d kept by age, %d kept immutable, %d %s",
		name, rep.Matched, rep.KeptByCount, rep.KeptByAge, rep.KeptImmutable, len(rep.Removed), count)
	if rep.KeptSchema > 0 {
		line += fmt.Sprintf(", %d signature tags kept (sha256-*: name them to prune them)", rep.KeptSchema)
	}
	if rep.Changed > 0 {
		line += fmt.Sprintf(", %d pushed or removed by another meanwhile (left as they are)", rep.Changed)
	}
	fmt.Fprintln(p.stdout, line)
	if p.verbose {
		now := time.Now()
		for _, t := range rep.Removed {
			fmt.Fprintf(p.stdout, "  %s %s:%s %s (pushed %s ago)\n", verb, name, t.Tag, t.Digest, formatAge(now.Sub(t.Pushed)))
		}
	}
	return err
}

// fail reports a failure at what, an interrupt once, and returns the exit
// status.
func (p *pruner) fail(ctx context.Context, what string, err error) int {
	if ctx.Err() != nil {
		if !p.stopped {
			p.stopped = true
			fmt.Fprintln(p.stderr, "lading prune: interrupted; the tags removed stay removed, run it again to go on")
		}
		return 1
	}
	p.failed++
	fmt.Fprintf(p.stderr, "lading prune: %s: %v\n", what, err)
	return 1
}

// summary prints the totals, and what removing tags does not do.
func (p *pruner) summary(grace time.Duration, gc, collecting bool) {
	if p.opts.DryRun {
		skipped := ""
		if gc {
			skipped = "; no collection either"
		}
		fmt.Fprintf(p.stdout, "would remove %d of %d matched tags in %d repositories (a dry run removes nothing%s)\n",
			p.removed, p.matched, p.repositories, skipped)
		return
	}
	prefix := "removed"
	switch {
	case p.stopped:
		prefix = "stopped; removed so far"
	case p.failed > 0:
		prefix = fmt.Sprintf("%d repositories failed; removed", p.failed)
	}
	fmt.Fprintf(p.stdout, "%s %d of %d matched tags in %d repositories\n", prefix, p.removed, p.matched, p.repositories)
	if p.removed > 0 && !collecting {
		fmt.Fprintf(p.stdout, "no space is freed yet: the manifests those tags named are untagged now (unless another tag names them), "+
			"and lading gc --untagged (or the scheduled collection with gc.untagged: true) removes them and their blobs once older than gc.grace (%v)\n", grace)
	}
}

// formatAge is an age to the unit that matters: days and hours, hours and
// minutes, or seconds.
func formatAge(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	return d.Round(time.Second).String()
}
