package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/bytesize"
	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
)

// storeCommand is the frame of a command over the store (gc, fsck, import): the
// flags saying where the store is, and a context that SIGINT or SIGTERM
// cancels.
type storeCommand struct {
	fs         *flag.FlagSet
	stderr     io.Writer
	configFile string
	root       string
	failed     int
	// operand, when set, names the one argument the command takes after
	// its flags (or among them), which arg then holds.
	operand string
	arg     string
	// check, when set, refuses the command line's values before the
	// store is opened.
	check func() error
}

// newStoreCommand returns a command over a store; failed is its exit
// status when the store cannot be opened or the run fails.
func newStoreCommand(name string, failed int, stderr io.Writer) *storeCommand {
	c := &storeCommand{fs: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr, failed: failed}
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.configFile, "config", "", "YAML configuration `file` (or "+config.ConfigEnv+"); its storage section says where the store is")
	c.fs.StringVar(&c.root, "root", "", "`directory` of a filesystem store; overrides the configuration")
	return c
}

// run parses args, opens the store and runs body with a registry over it,
// returning the exit status: 2 for a mistake in the command line or
// configuration, c.failed when the store cannot be opened.
func (c *storeCommand) run(args []string, body func(ctx context.Context, cfg *config.Config, reg *registry.Registry) int) int {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.operand != "" && c.fs.NArg() > 0 {
		// Flags may follow the operand too.
		c.arg = c.fs.Arg(0)
		if err := c.fs.Parse(c.fs.Args()[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
	}
	if c.operand != "" && c.arg == "" {
		fmt.Fprintf(c.stderr, "%s: %s missing\n", c.fs.Name(), c.operand)
		return 2
	}
	if c.fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "%s: unexpected arguments %q\n", c.fs.Name(), c.fs.Args())
		return 2
	}
	if c.check != nil {
		if err := c.check(); err != nil {
			fmt.Fprintf(c.stderr, "%s: %v\n", c.fs.Name(), err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.LoadStore(c.configFile, os.Environ())
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: configuration:\n%v\n", c.fs.Name(), err)
		return 2
	}
	if c.root == "" && cfg.Storage.Driver == "inmemory" {
		fmt.Fprintf(c.stderr, "%s: storage.driver inmemory keeps its store inside the serving process; there is no store here to open\n", c.fs.Name())
		return 2
	}
	drv, err := c.open(ctx, cfg)
	if err == nil {
		err = registry.CheckFormat(ctx, drv, false)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: storage: %v\n", c.fs.Name(), err)
		return c.failed
	}
	// The servers' locks on manifests, so that a removal here waits its
	// turn with their pushes.
	rc, locker := sharedLocks(ctx, cfg, drv, slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	// The servers' limit on manifests: what this command reads or writes
	// is bounded as their own collections and pushes are.
	// The servers' immutable tags: an import does not move them either.
	// (Validated with the configuration.)
	immutable, _ := glob.ParseTagRules(cfg.Tags.Immutable)
	opts := registry.Options{Locker: locker, MaxManifestSize: int64(cfg.HTTP.MaxManifestSize), ImmutableTags: immutable}
	if rc != nil {
		// The serving replicas cache links there: what this process
		// deletes must leave their cache too.
		defer rc.Close()
		opts.Cache = rc
	}
	return body(ctx, cfg, registry.New(drv, opts))
}

// open opens the store cfg names, or the one --root does.
func (c *storeCommand) open(ctx context.Context, cfg *config.Config) (driver.Driver, error) {
	if c.root != "" {
		cfg.Storage.Driver = "filesystem"
		cfg.Storage.Filesystem.Root = c.root
	}
	if cfg.Storage.Driver == "filesystem" {
		// A missing root would be created empty: say so instead.
		if _, err := os.Stat(cfg.Storage.Filesystem.Root); err != nil {
			return nil, err
		}
	}
	backend, err := openStorage(ctx, cfg.Storage)
	if err != nil {
		return nil, err
	}
	return driver.Instrument(backend, nil), nil
}

// flagSet reports whether the command line gave flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runGC(args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCommand("lading gc", 1, stderr)
	dryRun := cmd.fs.Bool("dry-run", false, "list what would be removed, and remove nothing")
	grace := cmd.fs.Duration("grace", 0, "keep blobs, links and untagged manifests younger than this (default: gc.grace, 24h)")
	untagged := cmd.fs.Bool("untagged", false, "also remove manifests no tag, index or kept subject reaches (default: gc.untagged)")
	window := cmd.fs.Duration("window", registry.DefaultGCWindow, "how long a run waits, once announced, for pushes in flight before it marks")
	// Checked as gc.grace is: a negative grace would collect what pushes
	// in flight are writing, and a run without a window would not wait
	// for them at all.
	cmd.check = func() error {
		if *grace < 0 || *window <= 0 {
			return fmt.Errorf("--grace must be 0 or more and --window more than 0 (got %v and %v)", *grace, *window)
		}
		return nil
	}
	return cmd.run(args, func(ctx context.Context, cfg *config.Config, reg *registry.Registry) int {
		opts := registry.GCOptions{DryRun: *dryRun, Grace: cfg.GC.Grace, DeleteUntagged: cfg.GC.Untagged, Window: *window, Unpulled: unpulled(cfg)}
		if flagSet(cmd.fs, "grace") {
			opts.Grace = *grace
		}
		if flagSet(cmd.fs, "untagged") {
			opts.DeleteUntagged = *untagged
		}
		return collect(ctx, reg, opts, stdout, stderr)
	})
}

// unpulled is a mirror's eviction age: proxy.evictafter, only on a
// mirror.
func unpulled(cfg *config.Config) time.Duration {
	if cfg.Proxy.RemoteURL == "" {
		return 0
	}
	return cfg.Proxy.EvictAfter
}

// collect runs one collection and prints its report.
func collect(ctx context.Context, reg *registry.Registry, opts registry.GCOptions, stdout, stderr io.Writer) int {
	progress := newProgress(stderr)
	opts.Progress = func(p registry.GCProgress) {
		progress.show("%-8s repositories %d  manifests %d  links %d  blobs %d  removed %d",
			p.Phase, p.Repositories, p.Manifests, p.Links, p.Blobs, p.Removed)
	}
	if opts.DryRun {
		opts.Removed = func(it registry.GCItem) {
			progress.clear()
			fmt.Fprintln(stdout, "would remove", describeItem(it))
		}
	}
	rep, err := reg.CollectGarbage(ctx, opts)
	progress.clear()
	if err != nil {
		fmt.Fprintf(stderr, "lading gc: %v\n", err)
		return 1
	}
	verb, repos := "removed", "repositories"
	if rep.DryRun {
		// A dry run removes nothing, so it cannot see a repository empty
		// out: it counts only those empty already.
		verb, repos = "would remove", "repositories empty already (those the run would empty are not counted in a dry run)"
	}
	evicted := ""
	if opts.Unpulled > 0 {
		evicted = fmt.Sprintf("%d tags not pulled for %v, ", rep.TagsEvicted, opts.Unpulled)
	}
	fmt.Fprintf(stdout, "%s %s%d manifests, %d repository links, %d blobs (%s) and %d %s in %v\n",
		verb, evicted, rep.ManifestsRemoved, rep.LinksRemoved, rep.BlobsRemoved, bytesize.Format(rep.BytesReclaimed),
		rep.RepositoriesRemoved, repos, rep.Duration.Round(time.Millisecond))
	left := "left"
	if rep.DryRun {
		left = "would leave"
	}
	fmt.Fprintf(stdout, "%s %d blobs (%s) stored\n", left, rep.Stored.Blobs, bytesize.Format(rep.Stored.Bytes))
	return 0
}

func describeItem(it registry.GCItem) string {
	switch it.Kind {
	case "blob":
		return fmt.Sprintf("blob %s (%s)", it.Digest, bytesize.Format(it.Size))
	case "repository":
		return "repository " + it.Repository
	case "tag":
		return fmt.Sprintf("tag %s:%s (%s, not pulled)", it.Repository, it.Tag, it.Digest)
	}
	return fmt.Sprintf("%s %s@%s", it.Kind, it.Repository, it.Digest)
}

// progress shows a status line that rewrites itself on a terminal, and a
// log line every few seconds anywhere else.
type progress struct {
	w        io.Writer
	terminal bool
	last     time.Time
	shown    bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, last: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progress) show(format string, args ...any) {
	switch {
	case p.terminal:
		fmt.Fprintf(p.w, "\r\033[K"+format, args...)
		p.shown = true
	case time.Since(p.last) >= 5*time.Second:
		p.last = time.Now()
		fmt.Fprintf(p.w, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
}

// clear removes the status line before other output.
func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
