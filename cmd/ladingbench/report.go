package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the whole run: what ran where, each metric per registry, and
// the targets checked for every registry against the baseline.
type report struct {
	Time       time.Time          `json:"time"`
	Machine    machine            `json:"machine"`
	Settings   map[string]any     `json:"settings"`
	Baseline   string             `json:"baseline"`
	Registries []string           `json:"registries"`
	Scenarios  []*scenarioReport  `json:"scenarios"`
	Ceilings   *ceilings          `json:"ceilings,omitempty"`
	Fsyncs     map[string]float64 `json:"fsyncsPerBlob,omitempty"`
	Targets    []targetCheck      `json:"targets,omitempty"`
	// Failures are scenarios a registry did not complete; its numbers for
	// them are missing.
	Failures []string `json:"failures,omitempty"`
}

type scenarioReport struct {
	Name    string          `json:"name"`
	Metrics []*metricReport `json:"metrics"`
}

type metricReport struct {
	metric
	Results map[string]*summary `json:"results"`
}

// summary is one registry's rounds of one metric. Speedup is how many
// times better than the baseline it did (>1: better), whichever way the
// metric runs: the median of the ratios of the rounds taken side by side,
// which cancels what drifted between rounds (on a virtual machine, a 1 GiB
// push can run twice as fast into recycled pages as into fresh ones). It
// is the ratio of the medians when the rounds cannot be paired, which
// SpeedupOfMedians always holds.
type summary struct {
	Samples          []float64 `json:"samples"`
	Median           float64   `json:"median"`
	Min              float64   `json:"min"`
	Max              float64   `json:"max"`
	Speedup          float64   `json:"speedup,omitempty"`
	SpeedupOfMedians float64   `json:"speedupOfMedians,omitempty"`
}

type targetCheck struct {
	Registry string  `json:"registry"`
	Target   string  `json:"target"`
	Value    float64 `json:"value"`
	Shown    string  `json:"shown"`
	Holds    bool    `json:"holds"`
}

func newReport(b *bench) *report {
	r := &report{Time: time.Now().UTC(), Baseline: b.targets[0].name}
	for _, t := range b.targets {
		r.Registries = append(r.Registries, t.name)
	}
	return r
}

func (r *report) scenario(name string) *scenarioReport {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (r *report) addScenario(sc scenario) {
	s := &scenarioReport{Name: sc.name}
	for _, m := range sc.metrics {
		s.Metrics = append(s.Metrics, &metricReport{metric: m, Results: map[string]*summary{}})
	}
	r.Scenarios = append(r.Scenarios, s)
}

func (r *report) addRound(scenario, registry string, rd round) {
	vals := rd.values
	if rd.usage != nil {
		vals[mRSS.Name] = float64(rd.usage.PeakRSS) / (1 << 20)
		vals[mCPU.Name] = rd.usage.CPU
	}
	for _, m := range r.scenario(scenario).Metrics {
		v, ok := vals[m.Name]
		if !ok {
			continue
		}
		s := m.Results[registry]
		if s == nil {
			s = &summary{}
			m.Results[registry] = s
		}
		s.Samples = append(s.Samples, v)
	}
}

// finish computes medians, ranges, speedups and, with targets, the checks.
func (r *report) finish(targets bool) {
	for _, s := range r.Scenarios {
		for _, m := range s.Metrics {
			for _, sum := range m.Results {
				sum.Median = median(sum.Samples)
				sum.Min, sum.Max = math.Inf(1), math.Inf(-1)
				for _, v := range sum.Samples {
					sum.Min, sum.Max = min(sum.Min, v), max(sum.Max, v)
				}
			}
			base := m.Results[r.Baseline]
			for name, sum := range m.Results {
				if base == nil || name == r.Baseline || base.Median == 0 || sum.Median == 0 {
					continue
				}
				better := func(v, b float64) float64 {
					if m.HigherBetter {
						return v / b
					}
					return b / v
				}
				sum.SpeedupOfMedians = better(sum.Median, base.Median)
				sum.Speedup = sum.SpeedupOfMedians
				if len(sum.Samples) == len(base.Samples) {
					var ratios []float64
					for i, v := range sum.Samples {
						if v > 0 && base.Samples[i] > 0 {
							ratios = append(ratios, better(v, base.Samples[i]))
						}
					}
					if len(ratios) == len(sum.Samples) {
						sum.Speedup = median(ratios)
					}
				}
			}
		}
	}
	if targets {
		r.checkTargets()
	}
}

func (r *report) result(scenario, metric, registry string) *summary {
	s := r.scenario(scenario)
	if s == nil {
		return nil
	}
	for _, m := range s.Metrics {
		if m.Name == metric {
			return m.Results[registry]
		}
	}
	return nil
}

// checkTargets evaluates issue 8's targets for each registry but the baseline.
func (r *report) checkTargets() {
	for _, reg := range r.Registries[1:] {
		add := func(target string, v float64, shown string, holds bool) {
			r.Targets = append(r.Targets, targetCheck{reg, target, v, shown, holds})
		}
		speedup := func(scenario, metric string, want float64) {
			if s := r.result(scenario, metric, reg); s != nil && s.Speedup > 0 {
				add(fmt.Sprintf("%s: %s ≥ %g× %s", scenario, metric, want, r.Baseline), s.Speedup, fmt.Sprintf("%.2f×", s.Speedup), s.Speedup >= want)
			}
		}
		ofCeiling := func(scenario, metric, ceiling string, c, want float64) {
			if s := r.result(scenario, metric, reg); s != nil && c > 0 {
				f := s.Median / c
				add(fmt.Sprintf("%s: %s ≥ %.0f%% of %s (%.0f MB/s)", scenario, metric, want*100, ceiling, c), f, fmt.Sprintf("%.0f%%", f*100), f >= want)
			}
		}
		below := func(scenario, metric string, limit float64, unit string) {
			if s := r.result(scenario, metric, reg); s != nil {
				add(fmt.Sprintf("%s: %s < %g %s", scenario, metric, limit, unit), s.Max, fmt.Sprintf("%.1f %s (worst round)", s.Max, unit), s.Max < limit)
			}
		}
		speedup("push", "push monolithic", 2)
		speedup("chunked", "push 16 MiB chunks", 2)
		if c := r.Ceilings; c != nil {
			// Both disk figures: the registries write new blobs (fresh pages
			// and blocks), yet the "disk write" may mean either.
			for _, floor := range []struct {
				name string
				v    float64
			}{{"min(SHA-256, write+fsync of a new file)", min(c.SHA256, c.DiskWriteFsync)}, {"min(SHA-256, rewrite+fsync)", min(c.SHA256, c.DiskRewriteFsync)}} {
				ofCeiling("push", "push monolithic", floor.name, floor.v, 0.6)
				ofCeiling("chunked", "push 16 MiB chunks", floor.name, floor.v, 0.6)
			}
		}
		speedup("pull", "pull", 2)
		if c := r.Ceilings; c != nil {
			ofCeiling("pull", "pull", "plain Go file server (sendfile)", c.FileServer, 0.8)
			ofCeiling("pull", "pull", "plain Go file server without sendfile", c.FileServerCopy, 0.8)
		}
		for _, ph := range []string{"push", "HEAD", "GET"} {
			speedup("small", ph+" ops/s", 5)
			below("small", ph+" p99", 20, "ms")
		}
		for _, ph := range []string{"PUT", "GET"} {
			speedup("manifests", ph+" ops/s", 5)
			below("manifests", ph+" p99", 20, "ms")
		}
		below("push", mRSS.Name, 100, "MiB")
		below("chunked", mRSS.Name, 100, "MiB")
		if f, ok := r.Fsyncs[reg]; ok {
			add("small: fsyncs (and syncfs) per committed blob ≤ 2", f, fmt.Sprintf("%.1f", f), f <= 2)
		}
	}
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// rows lays the report out as a table: one row per metric, per registry
// its median and range, and the speedup of each other registry.
func (r *report) rows() [][]string {
	head := []string{"scenario", "metric", "unit"}
	for _, reg := range r.Registries {
		head = append(head, reg+" median", "(min–max)")
	}
	for _, reg := range r.Registries[1:] {
		head = append(head, reg+" vs "+r.Baseline)
	}
	rows := [][]string{head}
	for _, s := range r.Scenarios {
		for _, m := range s.Metrics {
			row := []string{s.Name, m.Name, m.Unit}
			for _, reg := range r.Registries {
				if sum := m.Results[reg]; sum != nil {
					row = append(row, fmtNum(sum.Median), fmtNum(sum.Min)+"–"+fmtNum(sum.Max))
				} else {
					row = append(row, "–", "")
				}
			}
			for _, reg := range r.Registries[1:] {
				if sum := m.Results[reg]; sum != nil && sum.Speedup > 0 {
					row = append(row, fmt.Sprintf("%.2f×", sum.Speedup))
				} else {
					row = append(row, "–")
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

const speedupNote = "Speedup: the median over rounds of the ratio to the baseline's same round (rounds run side by side); above 1× is better, whichever way the metric runs (MB/s and ops/s: higher is better; ms, MiB and s: lower is better)."

// write prints the report as aligned text, or as Markdown with md set.
func (r *report) write(w io.Writer, md bool) {
	fmt.Fprintf(w, "Run of %s on %s.\n\n", r.Time.Format("2006-01-02 15:04 UTC"), r.Machine.summary())
	if b, err := json.Marshal(r.Settings); err == nil && len(r.Settings) > 0 {
		fmt.Fprintf(w, "Settings: `%s`\n\n", b)
	}
	writeTable(w, r.rows(), md)
	fmt.Fprintf(w, "\n%s\n", speedupNote)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "\nFAILED: %s\n", f)
	}
	if c := r.Ceilings; c != nil {
		fmt.Fprintf(w, "\nMachine ceilings: %s.\n", c.summary())
	}
	if len(r.Fsyncs) > 0 {
		var parts []string
		for _, reg := range r.Registries {
			if v, ok := r.Fsyncs[reg]; ok {
				parts = append(parts, fmt.Sprintf("%s %.1f", reg, v))
			}
		}
		fmt.Fprintf(w, "\ndurability calls (fsync, fdatasync, syncfs, sync_file_range) per committed small blob, by strace: %s.\n", strings.Join(parts, ", "))
	}
	if len(r.Targets) > 0 {
		rows := [][]string{{"registry", "target", "measured", ""}}
		for _, t := range r.Targets {
			rows = append(rows, []string{t.Registry, t.Target, t.Shown, holds(t.Holds)})
		}
		fmt.Fprintln(w)
		writeTable(w, rows, md)
	}
}

func writeTable(w io.Writer, rows [][]string, md bool) {
	if !md {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, row := range rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
		return
	}
	for i, row := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		if i == 0 {
			fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(row)))
		}
	}
}

func holds(ok bool) string {
	if ok {
		return "holds"
	}
	return "MISSED"
}
