package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
)

func retentionRule(t *testing.T, pattern string, prune PruneOptions) RetentionRule {
	t.Helper()
	g, err := glob.Compile(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return RetentionRule{Repositories: g, Prune: prune}
}

// Each repository is pruned by the first rule matching it, as prune
// would, immutable and signature tags kept; a dry run removes nothing.
func TestApplyRetention(t *testing.T) {
	forEachPruneDriver(t, "v*", func(t *testing.T, reg *Registry, clock *pruneClock, tick func()) {
		ci, team, lib := newFixture(t, reg, "ci/app"), newFixture(t, reg, "team/app"), newFixture(t, reg, "lib/x")
		ci.pushImage("latest")
		ci.pushImage("sha-3")
		_, old := team.pushImage("old")
		sig := "sha256-" + old.Encoded() + ".sig"
		team.pushImage(sig)
		team.pushImage("v1")
		lib.pushImage("old")
		tick()
		ci.pushImage("sha-2")
		tick()
		ci.pushImage("sha-1")
		team.pushImage("new")
		// What was pushed before team/app:new is older than an hour.
		clock.set(team.pushedAt("new").Add(time.Hour))
		opts := RetentionOptions{Rules: []RetentionRule{
			retentionRule(t, "ci/**", PruneOptions{Tags: []string{"sha-*"}, Keep: 1}),
			// ci/app too, but the rule before takes it: by this one its
			// latest and sha-3 would go. No rule matches lib/x.
			retentionRule(t, "**/app", PruneOptions{OlderThan: time.Hour}),
		}}
		// ci/app: sha-2 and sha-3 go, sha-1 stays by count; team/app: old
		// goes, new stays by age, v1 immutable, the signature by its
		// scheme.
		want := RetentionReport{Repositories: 2, Matched: 3 + 4, Removed: 2 + 1, Kept: 1 + 3}

		opts.DryRun = true
		rep, err := reg.ApplyRetention(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		rep.Duration = 0
		wantDry := want
		wantDry.DryRun = true
		if rep != wantDry {
			t.Errorf("dry run: %+v, want %+v", rep, wantDry)
		}
		ci.wantTags("latest", "sha-1", "sha-2", "sha-3")
		team.wantTags("new", "old", sig, "v1")
		lib.wantTags("old")

		opts.DryRun = false
		rep, err = reg.ApplyRetention(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		rep.Duration = 0
		if rep != want {
			t.Errorf("run: %+v, want %+v", rep, want)
		}
		ci.wantTags("latest", "sha-1")
		team.wantTags("new", sig, "v1")
		lib.wantTags("old")
	})
}

// The interval counts from the end of the last run, whichever replica ran
// it: a second registry on the same storage does not run again within it.
func TestRetentionIntervalAcrossReplicas(t *testing.T) {
	forEachPruneDriver(t, "", func(t *testing.T, reg *Registry, clock *pruneClock, _ func()) {
		f := newFixture(t, reg, "app")
		f.pushImage("one")
		clockB := &pruneClock{}
		replica := New(reg.driver, Options{Now: clockB.now})
		var runs []RetentionReport
		m := Maintenance{RetentionInterval: time.Hour,
			Retention: RetentionOptions{Rules: []RetentionRule{retentionRule(t, "**", PruneOptions{Keep: 1})}},
			Retained: func(rep RetentionReport, err error) {
				if err != nil {
					t.Error(err)
				}
				runs = append(runs, rep)
			}}
		var holdA, holdB time.Time
		reg.retainIfDue(t.Context(), m, &holdA)
		if len(runs) != 1 || runs[0].Repositories != 1 {
			t.Fatalf("a first look ran %+v, want one run over app", runs)
		}
		replica.retainIfDue(t.Context(), m, &holdB)
		reg.retainIfDue(t.Context(), m, &holdA)
		if len(runs) != 1 {
			t.Fatalf("%d runs within the interval, want 1", len(runs))
		}
		// Due on the under-lease check too: a replica that found the run
		// due just before another's ended skips it.
		opts := m.Retention
		opts.dueBefore = time.Now().Add(-time.Minute)
		if _, err := replica.ApplyRetention(t.Context(), opts); !errors.Is(err, errNotDue) {
			t.Fatalf("a run due before the last ended: %v, want it skipped", err)
		}
		clockB.set(time.Now().Add(time.Hour + time.Minute))
		replica.retainIfDue(t.Context(), m, &holdB)
		if len(runs) != 2 {
			t.Fatalf("%d runs once the interval passed, want 2", len(runs))
		}
	})
}

// A repository that fails is logged and counted; the others are pruned,
// and the run's end is recorded all the same.
func TestRetentionGoesOnPastAFailedRepository(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		for _, name := range []string{"a", "b", "c"} {
			f := newFixture(t, reg, name)
			// In this order by time, and by name where the storage
			// tells the time to the second (S3).
			f.pushImage("1-old")
			f.pushImage("2-new")
		}
		var logged bytes.Buffer
		broken := New(&deniedDriver{Driver: reg.driver, folders: []string{tagsPath("b")}, fail: errors.New("disk on fire")},
			Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
		var failed []string
		m := Maintenance{RetentionInterval: time.Hour,
			Retention: RetentionOptions{Rules: []RetentionRule{retentionRule(t, "*", PruneOptions{Keep: 1})}},
			Failed:    func(task string) { failed = append(failed, task) }}
		var rep RetentionReport
		var err error
		m.Retained = func(r RetentionReport, e error) { rep, err = r, e }
		var hold time.Time
		broken.retainIfDue(t.Context(), m, &hold)
		if err == nil || rep.Repositories != 3 || rep.Failed != 1 || rep.Removed != 2 {
			t.Fatalf("run: %+v, %v; want 3 repositories, 1 failed, 2 tags removed", rep, err)
		}
		if len(failed) != 1 || failed[0] != "retention" {
			t.Errorf("failures told: %v", failed)
		}
		for _, want := range []string{"repository=b", "disk on fire", "retention run failed"} {
			if !strings.Contains(logged.String(), want) {
				t.Errorf("no %q in the log:\n%s", want, logged.String())
			}
		}
		for _, name := range []string{"a", "c"} {
			newFixture(t, reg, name).wantTags("2-new")
		}
		newFixture(t, reg, "b").wantTags("1-old", "2-new")
		if s, err := reg.readRetentionState(context.Background()); err != nil || s.Ended.IsZero() || !s.Succeeded.IsZero() {
			t.Fatalf("state after a run with a failed repository: %+v, %v; want an end and no success", s, err)
		}
		// A run without a failure is a success, which every replica
		// reports from its start; a failed one after it keeps it.
		reg.retainIfDue(t.Context(), Maintenance{RetentionInterval: time.Nanosecond, Retention: m.Retention}, &hold)
		last, err := reg.RetentionLastSuccess(context.Background())
		if err != nil || last.IsZero() {
			t.Fatalf("last success after a clean run: %v, %v", last, err)
		}
		broken.retainIfDue(t.Context(), Maintenance{RetentionInterval: time.Nanosecond, Retention: m.Retention}, &hold)
		if again, err := reg.RetentionLastSuccess(context.Background()); err != nil || !again.Equal(last) {
			t.Errorf("last success after a failed run: %v, %v; want %v", again, err, last)
		}
	})
}

// unrecordedDriver cannot write the retention state.
type unrecordedDriver struct{ driver.Driver }

func (d unrecordedDriver) PutContent(ctx context.Context, p string, b []byte) error {
	if p == retentionStatePath {
		return errors.New("read-only bucket policy")
	}
	return d.Driver.PutContent(ctx, p, b)
}

// A run that cannot record its end is not run again at every look, which
// the storage cannot tell: this process holds the next for an interval.
func TestRetentionUnrecordedHoldsTheNextRun(t *testing.T) {
	forEachPruneDriver(t, "", func(t *testing.T, reg *Registry, clock *pruneClock, _ func()) {
		newFixture(t, reg, "app").pushImage("one")
		c := &pruneClock{}
		c.set(time.Now())
		broken := New(unrecordedDriver{reg.driver}, Options{Now: c.now, Logger: slog.New(slog.DiscardHandler)})
		runs := 0
		m := Maintenance{RetentionInterval: time.Hour,
			Retention: RetentionOptions{Rules: []RetentionRule{retentionRule(t, "**", PruneOptions{Keep: 1})}},
			Retained:  func(RetentionReport, error) { runs++ }}
		var hold time.Time
		for range 3 {
			broken.retainIfDue(t.Context(), m, &hold)
		}
		if runs != 1 {
			t.Fatalf("%d runs in three looks, want 1", runs)
		}
		c.set(time.Now().Add(time.Hour + time.Minute))
		broken.retainIfDue(t.Context(), m, &hold)
		if runs != 2 {
			t.Errorf("%d runs once the interval passed, want 2", runs)
		}
	})
}
