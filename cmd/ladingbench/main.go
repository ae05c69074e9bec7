// Command ladingbench compares container registries over the OCI
// Distribution API, side by side in one run: large blob push (monolithic
// and chunked) and pull, range reads, many small blobs, manifests and
// tags, and a whole image, each for several rounds with the registries
// interleaved so that drift of the machine falls on all of them alike.
//
//	ladingbench [flags] NAME=URL [NAME=PID] ...
//	ladingbench ceilings [--dir DIR] [--size 1GiB]
//
// The first registry is the baseline the others are compared with. A
// NAME=PID pair has the server's peak resident memory and CPU time read
// from /proc during each scenario. With no scenario flag, all run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "ceilings" {
		err = runCeilings(os.Args[2:])
	} else {
		err = run(os.Args[1:], os.Stdout)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ladingbench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ladingbench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ladingbench [flags] NAME=URL [NAME=PID] ...\n       ladingbench ceilings [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	rounds := fs.Int("rounds", 4, "rounds per scenario, an even number so each registry goes first as often; medians and ranges are over rounds")
	blobSize := sizeFlag(fs, "blob-size", 1<<30, "`size` of the large blob pushed and pulled")
	chunkSize := sizeFlag(fs, "chunk-size", 16<<20, "`size` of each PATCH of the chunked push")
	rangeSize := sizeFlag(fs, "range-size", 1<<20, "`size` of the range read in the middle of the large blob")
	rangeReads := fs.Int("range-reads", 20, "range reads per round; their median is the round's latency")
	smallCount := fs.Int("small-count", 2000, "small blobs per round")
	smallSize := sizeFlag(fs, "small-size", 4<<10, "`size` of each small blob")
	conc := fs.Int("concurrency", 32, "requests in flight for small blobs and manifests")
	manifests := fs.Int("manifest-count", 500, "manifests (and tags) per round")
	tagLists := fs.Int("tag-lists", 10, "tags list reads per round; their median is reported")
	readTime := fs.Duration("read-time", time.Second, "least `duration` of each HEAD and GET phase of small blobs and manifests, which reads the objects again as many times as it takes")
	layers := fs.String("image-layers", "50MiB,20MiB,5MiB,1MiB,10KiB", "comma-separated layer `sizes` of the image")
	imageJobs := fs.Int("image-jobs", 3, "layers transferred at once in the image scenario")
	singlePost := fs.Bool("single-post", false, "push blobs as one POST ?digest= request instead of POST then PUT (not every registry serves it)")
	quick := fs.Bool("quick", false, "small sizes for a run of about a minute: 64 MiB blob, 2 rounds, 300 small blobs, 100 manifests, reads for 200 ms, image layers a tenth")
	dataDir := fs.String("data-dir", "", "`directory` holding the registries' data: its disk is noted in the report, and its free space checked before the run")
	jsonOut := fs.String("json", "", "write the report as JSON to `file` (- for standard output)")
	mdOut := fs.String("markdown", "", "write the report as a Markdown table to `file`")
	ceilFile := fs.String("ceilings", "", "`file` written by `ladingbench ceilings --json`, for the targets stated against the machine")
	targets := fs.Bool("targets", true, "check issue 8's targets (filesystem driver) for each registry against the baseline")
	fsyncFile := fs.String("fsyncs", "", "JSON `file` mapping registry name to fsyncs per committed small blob, for that target")
	selected := map[string]*bool{}
	for _, sc := range allScenarios {
		selected[sc.name] = fs.Bool(sc.name, false, "run the "+sc.name+" scenario")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := settings{
		rounds: *rounds, blobSize: *blobSize, chunkSize: *chunkSize, rangeSize: *rangeSize, rangeReads: *rangeReads,
		smallCount: *smallCount, smallSize: *smallSize, concurrency: *conc, manifestCount: *manifests,
		tagListReads: *tagLists, readTime: *readTime, imageJobs: *imageJobs, singlePost: *singlePost,
	}
	for _, f := range strings.Split(*layers, ",") {
		n, err := parseSize(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("--image-layers: %w", err)
		}
		s.imageLayers = append(s.imageLayers, n)
	}
	if *quick {
		s.rounds, s.blobSize, s.smallCount, s.manifestCount, s.readTime = 2, 64<<20, 300, 100, min(s.readTime, 200*time.Millisecond)
		for i := range s.imageLayers {
			s.imageLayers[i] /= 10
		}
	}
	if s.rounds < 1 || s.blobSize < 1 || s.chunkSize < 1 || s.smallCount < 1 || s.concurrency < 1 || s.manifestCount < 1 || s.imageJobs < 1 || s.readTime < 0 {
		return errors.New("counts and sizes must be positive")
	}

	regs, err := parseTargets(fs.Args())
	if err != nil {
		return err
	}
	var scs []scenario
	for _, sc := range allScenarios {
		if *selected[sc.name] {
			scs = append(scs, sc)
		}
	}
	if len(scs) == 0 {
		scs = allScenarios
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tr := newTransport()
	for _, t := range regs {
		t.c = newClient(t.url, tr)
		if err := waitReady(ctx, t); err != nil {
			return err
		}
	}
	b := &bench{s: s, targets: regs, nonce: uint64(time.Now().UnixNano()), log: func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...)
	}}
	if *dataDir != "" {
		if err := checkRoom(*dataDir, b.roomNeeded(scs)); err != nil {
			return err
		}
	}
	mach := describeMachine(*dataDir)
	rep, err := b.runAll(ctx, scs)
	if err != nil {
		return err
	}
	rep.Machine = mach
	rep.Machine.LoadAfter = loadAverage()
	rep.Settings = s.asMap()
	if *ceilFile != "" {
		rep.Ceilings = &ceilings{}
		if err := readJSON(*ceilFile, rep.Ceilings); err != nil {
			return err
		}
	}
	if *fsyncFile != "" {
		if err := readJSON(*fsyncFile, &rep.Fsyncs); err != nil {
			return err
		}
	}
	rep.finish(*targets)
	rep.write(stdout, false)
	if *mdOut != "" {
		f, err := os.Create(*mdOut)
		if err != nil {
			return err
		}
		rep.write(f, true)
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		out, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		out = append(out, '\n')
		if *jsonOut == "-" {
			_, err = stdout.Write(out)
		} else {
			err = os.WriteFile(*jsonOut, out, 0o644)
		}
		if err != nil {
			return err
		}
	}
	if len(rep.Failures) > 0 {
		return fmt.Errorf("%d scenario runs failed (see the report)", len(rep.Failures))
	}
	return nil
}

func (s settings) asMap() map[string]any {
	return map[string]any{
		"rounds": s.rounds, "blobSize": s.blobSize, "chunkSize": s.chunkSize, "rangeSize": s.rangeSize,
		"rangeReads": s.rangeReads, "smallCount": s.smallCount, "smallSize": s.smallSize,
		"concurrency": s.concurrency, "manifests": s.manifestCount, "tagLists": s.tagListReads, "readTime": s.readTime.String(),
		"imageLayers": s.imageLayers, "imageJobs": s.imageJobs, "singlePost": s.singlePost,
	}
}

// parseTargets reads NAME=URL and NAME=PID arguments, keeping the order in
// which the URLs come: the first is the baseline.
func parseTargets(args []string) ([]*target, error) {
	var targets []*target
	byName := map[string]*target{}
	pids := map[string]int{}
	for _, a := range args {
		name, val, ok := strings.Cut(a, "=")
		if !ok || name == "" || val == "" {
			return nil, fmt.Errorf("argument %q: want NAME=URL or NAME=PID", a)
		}
		if pid, err := strconv.Atoi(val); err == nil {
			pids[name] = pid
			continue
		}
		u, err := url.Parse(val)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("argument %q: not an http(s) URL", a)
		}
		if byName[name] != nil {
			return nil, fmt.Errorf("registry %q given twice", name)
		}
		t := &target{name: name, index: len(targets), url: u}
		targets = append(targets, t)
		byName[name] = t
	}
	for name, pid := range pids {
		t := byName[name]
		if t == nil {
			return nil, fmt.Errorf("%s=%d: no registry named %s", name, pid, name)
		}
		t.pid = pid
	}
	if len(targets) == 0 {
		return nil, errors.New("no registries given (NAME=URL ...)")
	}
	return targets, nil
}

// waitReady waits up to 30 s for the registry's /v2/ to answer.
func waitReady(ctx context.Context, t *target) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req := newRequest(ctx, http.MethodGet, t.c.url("/v2/"), nil, 0)
		resp, err := t.c.hc.Do(req)
		if err == nil {
			drain(resp.Body)
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s at %s not ready: %w", t.name, t.url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readJSON(file string, v any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}
