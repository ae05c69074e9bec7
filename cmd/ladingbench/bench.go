package main

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// target is one registry under test.
type target struct {
	name  string
	index int
	url   *url.URL
	pid   int // 0: not sampled
	c     *client
	// bigBlob is the last large blob pushed, which the pull reads back.
	bigBlob *pushedBlob
}

type pushedBlob struct {
	repo string
	d    digest.Digest
	size int64
}

// settings are the scale knobs; the defaults are the sizes of the issue.
type settings struct {
	rounds        int
	blobSize      int64
	chunkSize     int64
	rangeSize     int64
	rangeReads    int
	smallCount    int
	smallSize     int64
	concurrency   int
	manifestCount int
	tagListReads  int
	readTime      time.Duration // least duration of each read phase (see repeatFor)
	imageLayers   []int64
	imageJobs     int
	singlePost    bool
}

// metric describes one number a scenario reports per round.
type metric struct {
	Name         string `json:"name"`
	Unit         string `json:"unit"`
	HigherBetter bool   `json:"higherBetter"`
}

var (
	mMBps = func(name string) metric { return metric{name, "MB/s", true} }
	mOps  = func(name string) metric { return metric{name, "ops/s", true} }
	mMs   = func(name string) metric { return metric{name, "ms", false} }
	mRSS  = metric{"server peak RSS", "MiB", false}
	mCPU  = metric{"server CPU", "s", false}
	// The client shares the machine: on few cores its own CPU time bounds
	// what any server can show.
	mClientCPU = metric{"bench client CPU", "s", false}
)

// round is what one scenario run against one registry measured.
type round struct {
	values map[string]float64
	usage  *procUsage
}

// recorder collects a round's values and watches the server around the
// timed part.
type recorder struct {
	t       *target
	r       round
	watch   *procWatch
	client0 float64 // own CPU seconds at start; -1 when not started
}

func (rec *recorder) start() {
	if rec.t.pid > 0 {
		rec.watch = watchProc(rec.t.pid)
	}
	if cpu, err := procCPU(os.Getpid()); err == nil {
		rec.client0 = cpu
	}
}

func (rec *recorder) stop() {
	if cpu, err := procCPU(os.Getpid()); err == nil && rec.client0 >= 0 {
		rec.set(mClientCPU.Name, cpu-rec.client0)
		rec.client0 = -1
	}
	if rec.watch != nil {
		u := rec.watch.done()
		rec.r.usage = &u
		rec.watch = nil
	}
}

func (rec *recorder) set(name string, v float64) { rec.r.values[name] = v }

// scenario is one workload. run prepares untimed, then brackets the timed
// part with rec.start and rec.stop.
type scenario struct {
	name    string
	metrics []metric
	run     func(ctx context.Context, b *bench, t *target, roundNo int, rec *recorder) error
}

type bench struct {
	s       settings
	targets []*target
	nonce   uint64
	log     func(format string, args ...any)
}

var seedHash = maphash.MakeSeed()

// seed gives content that no registry has seen: a new value for every run,
// scenario, round, registry and item.
func (b *bench) seed(parts ...any) uint64 {
	var h maphash.Hash
	h.SetSeed(seedHash)
	fmt.Fprint(&h, b.nonce)
	for _, p := range parts {
		fmt.Fprint(&h, "/", p)
	}
	return h.Sum64()
}

func (b *bench) repo(scenario string, t *target, roundNo int) string {
	return fmt.Sprintf("bench/%s-%x-%s-r%d", scenario, b.nonce&0xffffff, t.name, roundNo)
}

// runAll runs each scenario for every round, registries in turn within a
// round, so drift of the machine falls on all of them alike. Even rounds
// take them in reverse order (A B, B A, A B …): whoever goes first in a
// round meets the machine as the previous scenario left it, and that falls
// on each in turn. Before each run the kernel writes out whatever the last
// one left dirty (sync(2)), so that no registry pays, in its own syncs, for
// the writes another left to the kernel.
// A registry that fails a scenario is left out of its remaining rounds and
// the failure goes into the report: one registry's bug does not cost the
// other numbers of the run. Only a cancelled run ends early.
func (b *bench) runAll(ctx context.Context, scs []scenario) (*report, error) {
	rep := newReport(b)
	for _, sc := range scs {
		rep.addScenario(sc)
		failed := map[string]bool{}
		for r := 1; r <= b.s.rounds; r++ {
			order := slices.Clone(b.targets)
			if r%2 == 0 {
				slices.Reverse(order)
			}
			for _, t := range order {
				if failed[t.name] {
					continue
				}
				rec := &recorder{t: t, r: round{values: map[string]float64{}}, client0: -1}
				b.log("%s: round %d/%d, %s", sc.name, r, b.s.rounds, t.name)
				unix.Sync()
				err := sc.run(ctx, b, t, r, rec)
				rec.stop()
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if err != nil {
					failed[t.name] = true
					msg := fmt.Sprintf("%s on %s, round %d: %v", sc.name, t.name, r, err)
					b.log("FAILED %s", msg)
					rep.Failures = append(rep.Failures, msg)
					continue
				}
				rep.addRound(sc.name, t.name, rec.r)
			}
		}
	}
	return rep, nil
}

// parallel runs fn(i) for i in [0, n) on conc workers and returns each
// call's latency and the wall time of the whole.
func parallel(ctx context.Context, conc, n int, fn func(ctx context.Context, i int) error) ([]time.Duration, time.Duration, error) {
	return repeatFor(ctx, conc, n, 0, func(ctx context.Context, _, i int) error { return fn(ctx, i) })
}

// repeatFor runs fn(w, i) for i in [0, n) on conc workers, w naming the
// worker, then again over the same i until at least d has passed. A read
// phase over a few thousand objects lasts some tens of milliseconds
// against a fast server, and one collection, scheduling hiccup or the ramp
// moves its rate by a tenth; a second of reads gives the steady rate. The
// latencies are of every call.
func repeatFor(ctx context.Context, conc, n int, d time.Duration, fn func(ctx context.Context, w, i int) error) ([]time.Duration, time.Duration, error) {
	lats := make([][]time.Duration, conc)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	workers := conc
	if d == 0 {
		workers = min(conc, n)
	}
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n && !time.Now().Before(end) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := fn(ctx, w, i%n); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	var lat []time.Duration
	for _, l := range lats {
		lat = append(lat, l...)
	}
	return lat, wall, firstErr
}

// setOps records the throughput and latency percentiles of a parallel phase.
func (rec *recorder) setOps(phase string, lat []time.Duration, wall time.Duration) {
	rec.set(phase+" ops/s", float64(len(lat))/wall.Seconds())
	l := msAll(lat)
	rec.set(phase+" p50", percentile(l, 50))
	rec.set(phase+" p99", percentile(l, 99))
}

func opsMetrics(phase string) []metric {
	return []metric{mOps(phase + " ops/s"), mMs(phase + " p50"), mMs(phase + " p99")}
}
