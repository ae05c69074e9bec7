package hardening

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testserver"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// ledger is what the pushers were told: acknowledged blobs and manifests,
// every blob they tried, and the sessions they left open.
type ledger struct {
	mu        sync.Mutex
	acked     map[blobKey]bool
	tried     map[blobKey]bool
	manifests map[string][]byte // repo:tag → payload acknowledged
	sessions  map[*session]bool
}

type blobKey struct {
	repo string
	d    digest.Digest
}

// session is a chunked upload in progress: acked bytes were confirmed by
// a 202, sent bytes were at least partly on the wire.
type session struct {
	repo       string
	loc        string
	content    []byte
	acked      int64
	sent       int64
	committing bool
}

func newLedger() *ledger {
	return &ledger{acked: map[blobKey]bool{}, tried: map[blobKey]bool{}, manifests: map[string][]byte{}, sessions: map[*session]bool{}}
}

func (l *ledger) update(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

// pusher pushes until its context ends; errors are reported only while
// the server is meant to be up.
type pusher struct {
	c      *client
	l      *ledger
	rng    *mrand.Rand
	id     int
	n      int
	killed *atomic.Bool
}

func (p *pusher) run(ctx context.Context) error {
	for ctx.Err() == nil {
		var err error
		repo := fmt.Sprintf("crash/r%d", p.rng.IntN(4))
		switch k := p.rng.IntN(10); {
		case k < 4:
			_, err = p.monolithic(repo, randomBytes(16<<10+p.rng.IntN(1<<20)))
		case k < 8:
			_, err = p.chunked(repo, 512<<10+p.rng.IntN(3<<20))
		default:
			err = p.image(repo)
		}
		if err != nil {
			if p.killed.Load() {
				return nil
			}
			return err
		}
	}
	return nil
}

func (p *pusher) monolithic(repo string, content []byte) (digest.Digest, error) {
	key := blobKey{repo, digest.FromBytes(content)}
	p.l.update(func() { p.l.tried[key] = true })
	if _, err := p.c.pushMonolithic(repo, content); err != nil {
		return "", err
	}
	p.l.update(func() { p.l.acked[key] = true })
	return key.d, nil
}

func (p *pusher) chunked(repo string, size int) (digest.Digest, error) {
	content := randomBytes(size)
	key := blobKey{repo, digest.FromBytes(content)}
	loc, err := p.c.startSession(repo)
	if err != nil {
		return "", err
	}
	s := &session{repo: repo, loc: loc, content: content}
	p.l.update(func() { p.l.tried[key] = true; p.l.sessions[s] = true })
	const chunk = 256 << 10
	for off := 0; off < size; off += chunk {
		end := min(off+chunk, size)
		p.l.update(func() { s.sent = int64(end) })
		if loc, err = p.c.patch(loc, int64(off), content[off:end]); err != nil {
			return "", err
		}
		p.l.update(func() { s.acked, s.loc = int64(end), loc })
	}
	p.l.update(func() { s.committing = true })
	if err := p.c.commit(loc, key.d); err != nil {
		return "", err
	}
	p.l.update(func() { p.l.acked[key] = true; delete(p.l.sessions, s) })
	return key.d, nil
}

func (p *pusher) image(repo string) error {
	config := []byte(fmt.Sprintf(`{"pusher":%d,"n":%d}`, p.id, p.n))
	cd, err := p.monolithic(repo, config)
	if err != nil {
		return err
	}
	size := 8<<10 + p.rng.IntN(64<<10)
	ld, err := p.monolithic(repo, randomBytes(size))
	if err != nil {
		return err
	}
	tag := fmt.Sprintf("p%d-%d", p.id, p.n)
	p.n++
	payload := imageManifest(cd, len(config), ld, size, tag)
	if err := p.c.putManifest(repo, tag, payload); err != nil {
		return err
	}
	p.l.update(func() { p.l.manifests[repo+":"+tag] = payload })
	return nil
}

// TestCrashDuringPushes kills lading with SIGKILL while eight clients push
// blobs (whole and in chunks) and images into four repositories, restarts
// it on the same storage, and checks what the clients were told: every
// acknowledged blob and manifest is served intact, nothing is ever served
// with wrong content, and each interrupted session either resumes where
// the server says (and then commits with the right digest) or is unknown.
func TestCrashDuringPushes(t *testing.T) {
	root := t.TempDir()
	srv := start(t, testserver.Options{Root: root})
	l := newLedger()
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 9))
	const rounds, pushers = 3, 8
	for round := range rounds {
		var killed atomic.Bool
		ctx, cancel := context.WithCancel(context.Background())
		c := newClient(srv.URL, pushers)
		errs := make(chan error, pushers)
		var wg sync.WaitGroup
		for i := range pushers {
			p := &pusher{c: c, l: l, rng: mrand.New(mrand.NewPCG(rng.Uint64(), uint64(i))), id: round*pushers + i, killed: &killed}
			wg.Go(func() { errs <- p.run(ctx) })
		}
		runFor := time.Duration(400+rng.IntN(1200)) * time.Millisecond
		time.Sleep(runFor)
		killed.Store(true)
		srv.Kill()
		cancel()
		wg.Wait()
		c.close()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d, before the kill: %v", round, err)
			}
		}
		checkStore(t, root)

		srv = start(t, testserver.Options{Root: root})
		c = newClient(srv.URL, 4)
		stats := verifyLedger(t, c, l)
		c.close()
		t.Logf("round %d: killed after %v; %s", round, runFor, stats)
	}
}

// verifyLedger checks the restarted server against what clients were told,
// and finishes or forgets the interrupted sessions.
func verifyLedger(t *testing.T, c *client, l *ledger) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := 0
	for key := range l.tried {
		ok, err := c.verifyBlob(key.repo, key.d)
		if err != nil {
			t.Fatal(err)
		}
		if l.acked[key] && !ok {
			t.Fatalf("acknowledged blob %s in %s is gone after the crash", key.d, key.repo)
		}
		if !ok {
			lost++
		}
	}
	for ref, payload := range l.manifests {
		i := strings.LastIndex(ref, ":")
		repo, tag := ref[:i], ref[i+1:]
		for _, reference := range []string{tag, digest.FromBytes(payload).String()} {
			r, err := c.expect(http.StatusOK, http.MethodGet, "/v2/"+repo+"/manifests/"+reference, nil,
				"Accept", "application/vnd.oci.image.manifest.v1+json")
			if err != nil {
				t.Fatalf("acknowledged manifest %s: %v", ref, err)
			}
			if !bytes.Equal(r.body, payload) || r.header.Get("Docker-Content-Digest") != digest.FromBytes(payload).String() {
				t.Fatalf("manifest %s served as %q", ref, r.body)
			}
		}
	}
	resumed, unknown, dropped := 0, 0, 0
	for s := range l.sessions {
		off, r, err := c.sessionOffset(s.loc)
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(s.content)
		delete(l.sessions, s)
		if off < 0 {
			if code := errorCode(r.body); code != "BLOB_UPLOAD_UNKNOWN" {
				t.Fatalf("interrupted session %s: %s", s.loc, r)
			}
			unknown++
			continue
		}
		if off < s.acked || off > s.sent {
			t.Fatalf("interrupted session %s at %d; the client had %d acknowledged and sent %d", s.loc, off, s.acked, s.sent)
		}
		switch err := finishSession(c, s, off); {
		case err == errDropped:
			dropped++
		case err != nil:
			t.Fatal(err)
		}
		if ok, err := c.verifyBlob(s.repo, d); !ok || err != nil {
			t.Fatalf("resumed blob %s: %v %v", d, ok, err)
		}
		l.acked[blobKey{s.repo, d}] = true
		resumed++
	}
	return fmt.Sprintf("%d blobs acknowledged, %d tried and absent, %d manifests; interrupted sessions: %d resumed (%d of them dropped at the first write, pushed again), %d unknown",
		len(l.acked), lost, len(l.manifests), resumed, dropped, unknown)
}

var errDropped = errors.New("session dropped after the crash")

// finishSession sends the rest of an interrupted session from off, where
// the restarted server says it stands, and commits it.
//
// A kill between a chunk's data and the session's state, or inside a
// commit between the move of the data and the removal of the session,
// leaves a session whose status is consistent with what the client was
// told but whose next write finds the data disagreeing, and ends it: the
// client is told BLOB_UPLOAD_UNKNOWN and pushes again (errDropped). Any
// other refusal is an error.
func finishSession(c *client, s *session, off int64) error {
	d := digest.FromBytes(s.content)
	var r reply
	var err error
	if off < int64(len(s.content)) {
		cr := fmt.Sprintf("%d-%d", off, len(s.content)-1)
		r, err = c.do(http.MethodPatch, s.loc, s.content[off:], "Content-Range", cr)
		if err == nil && r.status == http.StatusAccepted {
			s.loc = r.header.Get("Location")
		}
	}
	if err == nil && (r.status == 0 || r.status == http.StatusAccepted) {
		r, err = c.do(http.MethodPut, withQuery(s.loc, "digest="+d.String()), nil)
	}
	switch {
	case err != nil:
		return err
	case r.status == http.StatusCreated:
		return nil
	case r.status == http.StatusNotFound && errorCode(r.body) == "BLOB_UPLOAD_UNKNOWN":
		if _, err := c.pushMonolithic(s.repo, s.content); err != nil {
			return err
		}
		return errDropped
	}
	return fmt.Errorf("finishing session %s from %d: %s", s.loc, off, r)
}

// checkStore runs the registry's consistency check on the storage the
// killed process left: a crash may leave litter, never damage.
func checkStore(t *testing.T, root string) {
	t.Helper()
	fsd, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(driver.Instrument(fsd, nil), registry.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	litter := map[string]bool{registry.ProblemUnexpectedObject: true, registry.ProblemUnlisted: true}
	_, err = reg.Fsck(context.Background(), registry.FsckOptions{Problem: func(p registry.FsckProblem) {
		if !litter[p.Kind] {
			t.Errorf("after the crash: %s at %s (%s): %s", p.Kind, p.Path, p.Digest, p.Detail)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
}
