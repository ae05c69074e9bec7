package driver_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
)

// A Commit that fails keeps what it did not make durable owed: the next
// Commit tries again instead of reporting it done.
func TestFailedCommitStaysOwed(t *testing.T) {
	ctx, batch := driver.WithBatch(context.Background())
	fail := errors.New("EIO")
	var calls []string
	results := map[string][]error{"a": {fail, nil}, "b": {nil}}
	owe := func(key string) {
		driver.Defer(ctx, key, func() syncFunc {
			return func() error {
				calls = append(calls, key)
				err := results[key][0]
				results[key] = results[key][1:]
				return err
			}
		}, func(syncFunc) {})
	}
	owe("a")
	owe("b")
	if err := batch.Commit(); err != fail {
		t.Fatalf("first Commit: %v", err)
	}
	if err := batch.Commit(); err != nil {
		t.Fatalf("second Commit: %v", err)
	}
	if want := []string{"a", "a", "b"}; len(calls) != len(want) || calls[0] != "a" || calls[1] != "a" || calls[2] != "b" {
		t.Fatalf("syncs run %v, want %v", calls, want)
	}
	if err := batch.Commit(); err != nil || len(calls) != 3 {
		t.Fatalf("a third Commit with nothing owed ran %v: %v", calls, err)
	}
}

type syncFunc func() error

func (f syncFunc) Sync() error { return f() }
