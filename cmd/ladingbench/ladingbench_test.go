package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func TestContentIsDeterministicAndStreamsAsItReads(t *testing.T) {
	c := content{seed: 42, size: 3*genUnit + 123}
	whole := c.bytes()
	var streamed bytes.Buffer
	buf := make([]byte, 1000) // reads that straddle units and stamps
	if _, err := io.CopyBuffer(&streamed, struct{ io.Reader }{c.reader()}, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(whole, streamed.Bytes()) {
		t.Fatal("streamed content differs from the content read at once")
	}
	part, _ := io.ReadAll(c.section(genUnit-5, 40))
	if !bytes.Equal(part, whole[genUnit-5:genUnit+35]) {
		t.Fatal("section differs from the same bytes of the whole")
	}
	if c.digest() != (content{seed: 42, size: c.size}).digest() {
		t.Fatal("same seed, different digest")
	}
	if c.digest() == (content{seed: 43, size: c.size}).digest() {
		t.Fatal("different seeds, same digest")
	}
	other := content{seed: 43, size: c.size}.bytes()
	for u := 0; u < 3; u++ {
		if bytes.Equal(whole[u*genUnit:(u+1)*genUnit], other[u*genUnit:(u+1)*genUnit]) {
			t.Fatalf("unit %d is the same under two seeds", u)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "16MiB": 16 << 20, "10KiB": 10 << 10, "512": 512, "2M": 2 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1TiBx"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestPercentileAndMedian(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 100, 6, 7, 8, 9}
	if got := percentile(xs, 50); got != 5 {
		t.Errorf("p50 = %v, want 5", got)
	}
	if got := percentile(xs, 99); got != 100 {
		t.Errorf("p99 = %v, want 100", got)
	}
	if got := median(xs); got != 5.5 {
		t.Errorf("median = %v, want 5.5", got)
	}
}

func TestParseTargetsKeepsOrderAndPIDs(t *testing.T) {
	ts, err := parseTargets([]string{"b=http://127.0.0.1:1", "a=http://127.0.0.1:2", "a=77"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].name != "b" || ts[1].name != "a" || ts[1].pid != 77 || ts[0].pid != 0 {
		t.Fatalf("targets %+v", ts)
	}
	for _, bad := range [][]string{{"x=1"}, {"a=ftp://h"}, {"a=http://h", "a=http://h"}, {}} {
		if _, err := parseTargets(bad); err == nil {
			t.Errorf("parseTargets(%q) accepted", bad)
		}
	}
}

func newLading(t *testing.T) string { return serveLading(t, nil) }

// serveLading serves a fresh in-memory Lading; fail, when set, answers
// the requests it picks with a 500.
func serveLading(t *testing.T, fail func(*http.Request) bool) string {
	log := slog.New(slog.DiscardHandler)
	reg := registry.New(inmemory.New(), registry.Options{Logger: log})
	h := server.New(reg, server.Options{Logger: log})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail != nil && fail(r) {
			http.Error(w, "broken on purpose", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRunGoesOnWhenARegistryFails checks that a registry failing one
// scenario is reported as such, keeps its numbers for the others, and that
// the run still fails in the end.
func TestRunGoesOnWhenARegistryFails(t *testing.T) {
	broken := serveLading(t, func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
	})
	jsonFile := filepath.Join(t.TempDir(), "r.json")
	err := run([]string{"--small", "--manifests", "--rounds", "2", "--small-count", "10", "--manifest-count", "5",
		"--tag-lists", "1", "--read-time", "20ms", "--json", jsonFile, "ok=" + newLading(t), "broken=" + broken}, io.Discard)
	if err == nil {
		t.Fatal("run succeeded although a registry failed")
	}
	var rep report
	b, _ := os.ReadFile(jsonFile)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], "manifests on broken, round 1") {
		t.Fatalf("failures %q, want the manifests scenario on broken", rep.Failures)
	}
	if s := rep.result("small", "push ops/s", "broken"); s == nil || len(s.Samples) != 2 {
		t.Errorf("small on broken: %+v, want two rounds", s)
	}
	if s := rep.result("manifests", "PUT ops/s", "ok"); s == nil || len(s.Samples) != 2 {
		t.Errorf("manifests on ok: %+v, want two rounds", s)
	}
}

// TestRunEveryScenario runs the whole benchmark, tiny, against two
// registries and checks the report holds a number for every metric of
// every scenario, a speedup for the second registry, and usage for the
// one given a process id (this test's own).
func TestRunEveryScenario(t *testing.T) {
	dir := t.TempDir()
	jsonFile, mdFile := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.md")
	var out bytes.Buffer
	err := run([]string{
		"--rounds", "2", "--blob-size", "1MiB", "--chunk-size", "300KiB", "--range-reads", "3",
		"--small-count", "40", "--concurrency", "8", "--manifest-count", "12", "--tag-lists", "2",
		"--read-time", "20ms", "--image-layers", "200KiB,1KiB", "--json", jsonFile, "--markdown", mdFile,
		"base=" + newLading(t), "other=" + newLading(t), "other=" + strconv.Itoa(os.Getpid()),
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Scenarios) != len(allScenarios) {
		t.Fatalf("%d scenarios in the report, want %d", len(rep.Scenarios), len(allScenarios))
	}
	for _, s := range rep.Scenarios {
		for _, m := range s.Metrics {
			usage := m.Name == mRSS.Name || m.Name == mCPU.Name
			if m.Name == mClientCPU.Name {
				continue // measured for every registry
			}
			if base := m.Results["base"]; (base != nil) == usage {
				t.Errorf("%s %s: baseline result %v (no process id was given for it)", s.Name, m.Name, base)
			}
			o := m.Results["other"]
			if o == nil || len(o.Samples) != 2 {
				t.Errorf("%s %s: want 2 rounds for other, got %+v", s.Name, m.Name, o)
				continue
			}
			if !usage && !(o.Speedup > 0) {
				t.Errorf("%s %s: no speedup against the baseline", s.Name, m.Name)
			}
			if m.Name == mRSS.Name && o.Median <= 0 {
				t.Errorf("%s: peak RSS %v", s.Name, o.Median)
			}
		}
	}
	md, _ := os.ReadFile(mdFile)
	for _, want := range []string{"| push | push monolithic | MB/s |", "other vs base", "image pull"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if !strings.Contains(out.String(), "small: GET ops/s ≥ 5× base") {
		t.Errorf("text report lacks the target checks:\n%s", out.String())
	}
}

// TestSpeedupPairsRounds checks that the speedup compares each round with
// the baseline's same round, so a drift shared by both cancels out.
func TestSpeedupPairsRounds(t *testing.T) {
	rep := &report{Baseline: "a", Registries: []string{"a", "b"}}
	rep.addScenario(scenario{name: "s", metrics: []metric{mMBps("rate"), mMs("latency")}})
	rep.addRound("s", "a", round{values: map[string]float64{"rate": 100, "latency": 10}})
	rep.addRound("s", "b", round{values: map[string]float64{"rate": 150, "latency": 5}})
	rep.addRound("s", "a", round{values: map[string]float64{"rate": 400, "latency": 40}})
	rep.addRound("s", "b", round{values: map[string]float64{"rate": 440, "latency": 40}})
	rep.finish(false)
	if got := rep.result("s", "rate", "b").Speedup; got != 1.3 { // ratios 1.5 and 1.1
		t.Errorf("rate speedup %v, want 1.3", got)
	}
	if got := rep.result("s", "rate", "b").SpeedupOfMedians; got != 295.0/250 {
		t.Errorf("rate speedup of medians %v, want %v", got, 295.0/250)
	}
	if got := rep.result("s", "latency", "b").Speedup; got != 1.5 { // ratios 2 and 1
		t.Errorf("latency speedup %v, want 1.5", got)
	}
}
