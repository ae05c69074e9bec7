package driver

import (
	"context"
	"time"
)

// Staged is a PutContent split in two: its bytes are written already, and
// Publish makes them durable if they are not yet, then visible at their
// path (durable on return, or under a Batch at its Commit). Several writes
// that must become visible in a given order can so pay for their bytes'
// syncs side by side (a file system syncs them all at the first Publish),
// and only the publications in order. A Staged is published or discarded
// exactly once.
type Staged interface {
	Publish(ctx context.Context) error
	Discard()
}

// Stager is implemented by drivers for which making bytes durable and
// publishing a name are separate steps (a file system: write and sync a
// temporary file, then rename it).
type Stager interface {
	Stage(ctx context.Context, path string, content []byte) (Staged, error)
}

// Stage prepares a PutContent of content at path on d. Drivers that are not
// Stagers (an object store, where the write is the publication) hold the
// content until Publish.
func Stage(ctx context.Context, d Driver, path string, content []byte) (Staged, error) {
	if s, ok := d.(Stager); ok {
		return s.Stage(ctx, path, content)
	}
	return heldPut{d: d, path: path, content: content}, nil
}

type heldPut struct {
	d       Driver
	path    string
	content []byte
}

func (h heldPut) Publish(ctx context.Context) error { return h.d.PutContent(ctx, h.path, h.content) }

func (heldPut) Discard() {}

// Stage implements Stager for the wrapped driver, checking the path first.
func (i *instrumented) Stage(ctx context.Context, path string, content []byte) (s Staged, err error) {
	defer i.report("Stage", time.Now(), &err)
	if err := i.check(path); err != nil {
		return nil, err
	}
	s, err = Stage(ctx, i.d, path, content)
	if err != nil {
		return nil, err
	}
	return instrumentedStaged{s: s, i: i}, nil
}

type instrumentedStaged struct {
	s Staged
	i *instrumented
}

func (s instrumentedStaged) Publish(ctx context.Context) (err error) {
	defer s.i.report("Staged.Publish", time.Now(), &err)
	return s.s.Publish(ctx)
}

func (s instrumentedStaged) Discard() { s.s.Discard() }
