package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
)

// RetentionRule is a prune rule over the repositories a pattern matches.
type RetentionRule struct {
	Repositories glob.Glob
	// Prune's Tags, Keep and OlderThan are the rule; its DryRun is
	// RetentionOptions'.
	Prune PruneOptions
}

// RetentionOptions configure one application of the retention rules.
type RetentionOptions struct {
	// Rules in order: a repository is pruned by the first that matches
	// it, so a narrow rule placed before a broad one takes its
	// repositories out of the broad one.
	Rules []RetentionRule
	// DryRun reports what would go and removes nothing.
	DryRun bool

	// dueBefore, when set, skips the run if one has ended since (Maintain).
	dueBefore time.Time
}

// RetentionReport sums up one application of the rules.
type RetentionReport struct {
	DryRun bool
	// Repositories a rule matched, Failed among them those whose prune
	// failed (each is logged).
	Repositories, Failed int
	// Matched tags, of which Removed went (in a dry run, would go) and
	// Kept stayed, for any reason PruneReport gives.
	Matched, Removed, Kept int
	Duration               time.Duration
}

const retentionLeaseKey = "retention"

// retentionState is the end of the last application of the rules that
// went through the catalog, which schedules the next on every replica,
// and of the last that went through without a failure, which every
// replica reports from its start (lading_retention_last_success…).
type retentionState struct {
	Ended     time.Time `json:"ended,omitzero"`
	Succeeded time.Time `json:"succeeded,omitzero"`
}

// errStateNotRecorded is a run's failure to record its end: the run itself
// went through.
var errStateNotRecorded = errors.New("recording the run's end")

// RetentionLastSuccess is when the last application of the retention
// rules, any replica's, went through without a failure; zero before one.
func (r *Registry) RetentionLastSuccess(ctx context.Context) (time.Time, error) {
	s, err := r.readRetentionState(ctx)
	return s.Succeeded, err
}

func (r *Registry) readRetentionState(ctx context.Context) (retentionState, error) {
	var s retentionState
	raw, err := r.driver.GetContent(ctx, retentionStatePath)
	switch {
	case driver.IsNotFound(err):
		return s, nil
	case err != nil:
		return s, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		// Unreadable: as if no run had ended, so the next look runs one
		// and writes it again.
		r.log.Warn("retention: the state of the last run does not read; it is written again at the next", "path", retentionStatePath, "err", err)
		return retentionState{}, nil
	}
	return s, nil
}

// ApplyRetention prunes each repository of the catalog that a rule
// matches by the first such rule, going on past a repository that fails.
// One run at a time across replicas, through a lease in the backend; a
// run that finds another returns at once with ErrCollectorBusy. The
// manifests the removed tags named stay, untagged, for the collector.
//
// A run that went through the catalog records its end, even when some
// repositories failed: those wait for the next run rather than make every
// look at the schedule try again.
func (r *Registry) ApplyRetention(ctx context.Context, opts RetentionOptions) (rep RetentionReport, err error) {
	start := time.Now()
	rep.DryRun = opts.DryRun
	ctx, release, err := r.holdLease(ctx, retentionLeaseKey)
	if err != nil {
		return rep, err
	}
	defer release(&err)
	// Every way out reports what was done, and for how long.
	defer func() {
		rep.Kept = rep.Matched - rep.Removed
		rep.Duration = time.Since(start)
	}()
	state, err := r.readRetentionState(ctx)
	if err != nil {
		return rep, err
	}
	if !opts.dueBefore.IsZero() && state.Ended.After(opts.dueBefore) {
		return rep, errNotDue // scheduled, and another replica ran it meanwhile
	}

	patterns := make([]glob.Glob, len(opts.Rules))
	for i, rule := range opts.Rules {
		patterns[i] = rule.Repositories
	}
	matches, err := r.MatchRepositories(ctx, patterns)
	if err != nil {
		return rep, err
	}
	for _, m := range matches {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		prune := opts.Rules[m.Pattern].Prune
		prune.DryRun = opts.DryRun
		pr, err := r.PruneRepository(ctx, m.Name, prune)
		rep.Repositories++
		rep.Matched += pr.Matched
		rep.Removed += len(pr.Removed)
		if err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			rep.Failed++
			r.log.Error("retention: a repository failed; its tags wait for the next run", "repository", m.Name, "removed", len(pr.Removed), "err", err)
		}
	}
	state.Ended = r.now()
	if rep.Failed == 0 {
		state.Succeeded = state.Ended
	}
	raw, err := json.Marshal(state)
	if err == nil {
		err = r.driver.PutContent(ctx, retentionStatePath, raw)
	}
	if err != nil {
		return rep, fmt.Errorf("%w: %w", errStateNotRecorded, err)
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("%d of %d repositories failed", rep.Failed, rep.Repositories)
	}
	return rep, nil
}
