package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
)

// storeFlags are the flags gc and fsck share: where the store is.
type storeFlags struct {
	config, root string
}

func (s *storeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&s.config, "config", "", "YAML configuration `file` (or "+config.ConfigEnv+"); its storage section says where the store is")
	fs.StringVar(&s.root, "root", "", "`directory` of a filesystem store; overrides the configuration")
}

// open loads the configuration and opens the store it names.
func (s *storeFlags) open(ctx context.Context) (*config.Config, driver.Driver, error) {
	cfg, err := config.Load(s.config, os.Environ(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("configuration:\n%w", err)
	}
	if s.root != "" {
		cfg.Storage.Driver = "filesystem"
		cfg.Storage.Filesystem.Root = s.root
	}
	if cfg.Storage.Driver == "filesystem" {
		// A missing root would be created empty: say so instead.
		if _, err := os.Stat(cfg.Storage.Filesystem.Root); err != nil {
			return nil, nil, fmt.Errorf("storage: %w", err)
		}
	}
	backend, err := openStorage(ctx, cfg.Storage)
	if err != nil {
		return nil, nil, fmt.Errorf("storage: %w", err)
	}
	return cfg, driver.Instrument(backend, nil), nil
}

// parseCommand parses args for a command that takes flags only; ok false
// carries the exit status.
func parseCommand(fs *flag.FlagSet, args []string, stderr io.Writer) (status int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return 2, false
	}
	return 0, true
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runGC(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lading gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var store storeFlags
	store.bind(fs)
	dryRun := fs.Bool("dry-run", false, "list what would be removed, and remove nothing")
	grace := fs.Duration("grace", 0, "keep blobs, links and untagged manifests younger than this (default: gc.grace, 24h)")
	untagged := fs.Bool("untagged", false, "also remove manifests no tag, index or kept subject reaches (default: gc.untagged)")
	window := fs.Duration("window", registry.DefaultGCWindow, "how long a run waits, once announced, for pushes in flight before it marks")
	if status, ok := parseCommand(fs, args, stderr); !ok {
		return status
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, drv, err := store.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "lading gc: %v\n", err)
		return 2
	}
	opts := registry.GCOptions{DryRun: *dryRun, Grace: cfg.GC.Grace, DeleteUntagged: cfg.GC.Untagged, Window: *window}
	if flagSet(fs, "grace") {
		opts.Grace = *grace
	}
	if flagSet(fs, "untagged") {
		opts.DeleteUntagged = *untagged
	}
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
	rep, err := registry.New(drv, registry.Options{}).CollectGarbage(ctx, opts)
	progress.clear()
	if err != nil {
		fmt.Fprintf(stderr, "lading gc: %v\n", err)
		return 1
	}
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
	}
	fmt.Fprintf(stdout, "%s %d manifests, %d repository links, %d blobs (%s) and %d repositories in %v\n",
		verb, rep.ManifestsRemoved, rep.LinksRemoved, rep.BlobsRemoved, byteSize(rep.BytesReclaimed),
		rep.RepositoriesRemoved, rep.Duration.Round(time.Millisecond))
	return 0
}

func describeItem(it registry.GCItem) string {
	switch it.Kind {
	case "blob":
		return fmt.Sprintf("blob %s (%s)", it.Digest, byteSize(it.Size))
	case "repository":
		return "repository " + it.Repository
	}
	return fmt.Sprintf("%s %s@%s", it.Kind, it.Repository, it.Digest)
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
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
