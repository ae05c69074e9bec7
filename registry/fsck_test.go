package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func fsckProblems(t *testing.T, reg *Registry, repair bool) (FsckReport, map[string][]FsckProblem) {
	t.Helper()
	got := map[string][]FsckProblem{}
	rep, err := reg.Fsck(context.Background(), FsckOptions{Repair: repair, Problem: func(p FsckProblem) {
		got[p.Kind] = append(got[p.Kind], p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	return rep, got
}

func kinds(m map[string][]FsckProblem) []string {
	var ks []string
	for k, ps := range m {
		for range ps {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

func TestFsck(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		ctx := context.Background()
		drv := reg.driver
		f := newFixture(t, reg, "checked")
		f.pushImage("good")
		if rep, got := fsckProblems(t, reg, false); len(got) != 0 || rep.Blobs != 3 || rep.Manifests != 1 || rep.Tags != 1 || rep.Links != 3 {
			t.Fatalf("clean store: %+v %v", rep, got)
		}

		// Damage of every kind fsck knows.
		bad := f.image()
		corrupt := bad.Layers[0].Digest
		f.put("bad", mustJSON(t, bad))
		put := func(p string, b []byte) {
			if err := drv.PutContent(ctx, p, b); err != nil {
				t.Fatal(err)
			}
		}
		put(blobPath(corrupt), []byte("not what was pushed"))
		nothing := digest.FromString("nothing")
		put(layerLinkPath("checked", nothing), []byte("7"))
		put(tagPath("checked", "dangling"), []byte(nothing))
		put(referrerPath("checked", nothing, digest.FromString("gone")), []byte(`{}`))
		config := bad.Config.Digest
		put(layerLinkPath("checked", config), []byte("999"))
		lost := f.image()
		lostM := f.put(digest.FromBytes(mustJSON(t, lost)).String(), mustJSON(t, lost))
		if err := drv.Delete(ctx, blobPath(lostM.Descriptor.Digest)); err != nil {
			t.Fatal(err)
		}
		subject := f.put("subject", mustJSON(t, f.image())).Descriptor
		unlistedRef := f.put("signed", mustJSON(t, f.artifact(subject, sigType, nil))).Descriptor
		if err := drv.Delete(ctx, referrerPath("checked", subject.Digest, unlistedRef.Digest)); err != nil {
			t.Fatal(err)
		}
		other := newFixture(t, reg, "unlisted")
		other.pushImage("x")
		if err := drv.Delete(ctx, catalogPath("unlisted")); err != nil {
			t.Fatal(err)
		}

		// Two dangling links: the one to nothing, and the lost manifest's
		// bytes. One wrong size: the config's link, written with a size
		// (links are empty, but one holding a wrong size is damage).
		want := []string{ProblemCorruptBlob, ProblemDanglingLink, ProblemDanglingLink, ProblemDanglingTag,
			ProblemUnlistedReferrer, ProblemManifestBytes, ProblemUnlisted, ProblemStaleReferrer, ProblemLinkSize}
		_, got := fsckProblems(t, reg, false)
		if !slices.Equal(kinds(got), want) {
			t.Fatalf("problems %v, want %v", kinds(got), want)
		}
		if got[ProblemCorruptBlob][0].Digest != corrupt {
			t.Fatalf("corrupt blob reported: %+v", got[ProblemCorruptBlob])
		}

		// Repair fixes all but the image whose corrupt layer it removed:
		// only a push can bring that back.
		rep, got := fsckProblems(t, reg, true)
		if rep.Repaired != rep.Problems-1 || len(got[ProblemMissingBlob]) != 1 || got[ProblemMissingBlob][0].Repaired {
			t.Fatalf("repaired %d of %d: %v", rep.Repaired, rep.Problems, kinds(got))
		}
		// Which says what brings it back.
		if want := corrupt.String() + ": its bytes were corrupt and the repair removed them: push the image (its layers) again"; got[ProblemMissingBlob][0].Detail != want {
			t.Fatalf("detail %q, want %q", got[ProblemMissingBlob][0].Detail, want)
		}
		_, got = fsckProblems(t, reg, true)
		if !slices.Equal(kinds(got), []string{ProblemMissingBlob}) || got[ProblemMissingBlob][0].Detail != corrupt.String()+": its bytes are missing: push the image (its layers) again" {
			t.Fatalf("after repair: %v", got)
		}
		mustPullable(t, f, "good")
		mustPullable(t, other, "x")
		if names, _, _ := reg.Catalog(ctx, "", 0); !slices.Contains(names, "unlisted") {
			t.Fatalf("catalog marker not restored: %v", names)
		}
		if desc, err := f.repo.Blobs().Stat(ctx, config); err != nil || desc.Size != bad.Config.Size {
			t.Fatalf("link size not rewritten: %+v %v", desc, err)
		}
		if refs, err := f.ms.Referrers(ctx, subject.Digest, ""); err != nil || len(refs) != 1 || refs[0].Digest != unlistedRef.Digest || refs[0].ArtifactType != sigType {
			t.Fatalf("referrer not listed again: %+v %v", refs, err)
		}
	})
}

// A corrupt blob that fsck removes and a client then pushes again, with a
// manifest using it, keeps its new bytes and links through the rest of
// the repair and the next collection.
func TestFsckRepairKeepsABlobPushedAgain(t *testing.T) {
	f, h := hookedFixture(t)
	reg := f.repo.reg
	content := randomContent(100)
	layer := f.blob(testLayerType, content)
	if err := reg.driver.PutContent(f.ctx, blobPath(layer.Digest), []byte("bit rot")); err != nil {
		t.Fatal(err)
	}
	h.on("delete", blobPath(layer.Digest), false, func() {
		// The client's HEAD now says BLOB_UNKNOWN: it uploads again and
		// pushes its manifest, both acknowledged.
		f.blob(testLayerType, content)
		img := f.image()
		img.Layers = []v1.Descriptor{layer}
		f.put("v1", mustJSON(t, img))
	})
	fsckProblems(t, reg, true)
	if err := pullable(f.ctx, f.repo, "v1"); err != nil {
		t.Fatalf("after fsck --repair: %v", err)
	}
	collect(t, reg, quickGC(false))
	if err := pullable(f.ctx, f.repo, "v1"); err != nil {
		t.Fatalf("after a collection: %v", err)
	}
}

// A collection the state shows running while no collector holds the lease
// (one killed mid-run) is reported, and the repair ends it, so writes stop
// pinning for it; one whose collector holds the lease is left alone.
func TestFsckEndsAnAbandonedCollection(t *testing.T) {
	f, _ := hookedFixture(t)
	reg := f.repo.reg
	if _, err := reg.writeGCState(f.ctx, gcState{Run: "dead", Window: DefaultGCWindow}); err != nil {
		t.Fatal(err)
	}
	f.pushImage("v1") // pins for the dead run
	if pins, _ := listAll(f.ctx, reg.driver, gcRunPinsPath("dead")); len(pins) == 0 {
		t.Fatal("the push pinned nothing: the test proves nothing")
	}
	unlock, _, err := tryLock(f.ctx, NewBackendLocker(reg.driver, 0), gcLeaseKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, got := fsckProblems(t, reg, false); len(got[ProblemAbandonedRun]) != 0 {
		t.Fatalf("a run whose collector holds the lease reported: %v", kinds(got))
	}
	unlock()
	if _, got := fsckProblems(t, reg, true); len(got[ProblemAbandonedRun]) != 1 {
		t.Fatalf("problems %v, want the abandoned run", kinds(got))
	}
	s, err := reg.readGCState(f.ctx)
	if err != nil || s.active() || s.Last != "dead" {
		t.Fatalf("state after the repair: %+v %v", s, err)
	}
	if pins, _ := listAll(f.ctx, reg.driver, gcRunPinsPath("dead")); len(pins) != 0 {
		t.Fatalf("pins left: %v", pins)
	}
	if _, got := fsckProblems(t, reg, false); len(got) != 0 {
		t.Fatalf("problems after the repair: %v", kinds(got))
	}
}

// lockingHook is a Locker that runs before once, at its first TryLock of
// a manifest's lock.
type lockingHook struct {
	Locker
	before func()
}

func (l *lockingHook) TryLock(ctx context.Context, key string) (func(), error) {
	if fn := l.before; fn != nil && strings.HasPrefix(key, "manifest-") {
		l.before = nil
		fn()
	}
	return l.Locker.TryLock(ctx, key)
}

// fsck --repair of a manifest whose bytes are lost, beside a server that
// shares its locks (S3, Redis): a push of those bytes again that lands
// just before the repair takes the manifest's lock is kept, and a
// manifest a push or delete holds is left for the next run without
// failing the check.
func TestFsckRepairOfLostManifestBytesMeetingAPush(t *testing.T) {
	setup := func(t *testing.T) (*fixture, *Registry, []byte, digest.Digest, *lockingHook) {
		drv := driver.Instrument(inmemory.New(), nil)
		shared := NewLocalLocker()
		f := newFixture(t, New(drv, Options{Locker: shared}), "race")
		payload, d := f.pushImage("v1")
		if err := drv.Delete(f.ctx, blobPath(d)); err != nil {
			t.Fatal(err)
		}
		f.repo.reg.manifests = newManifestCache(0) // the server forgets the bytes too
		hook := &lockingHook{Locker: shared}
		return f, New(drv, Options{Locker: hook}), payload, d, hook
	}
	t.Run("pushed again meanwhile", func(t *testing.T) {
		f, checker, payload, d, hook := setup(t)
		hook.before = func() {
			if _, err := f.ms.Put(f.ctx, d.String(), "", payload, "late"); err != nil {
				t.Errorf("push: %v", err)
			}
		}
		if _, err := checker.Fsck(f.ctx, FsckOptions{Repair: true}); err != nil {
			t.Fatal(err)
		}
		if hook.before != nil {
			t.Fatal("the repair took no lock")
		}
		mustPullable(t, f, "late")
	})
	t.Run("held", func(t *testing.T) {
		f, checker, _, d, _ := setup(t)
		unlock, _, err := f.ms.lockManifest(f.ctx, d, false)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		var left []FsckProblem
		rep, err := checker.Fsck(f.ctx, FsckOptions{Repair: true, Problem: func(p FsckProblem) {
			if p.Kind == ProblemManifestBytes && !p.Repaired {
				left = append(left, p)
			}
		}})
		if err != nil || len(left) != 1 {
			t.Fatalf("fsck --repair of a held manifest: %+v %v; left: %v", rep, err, left)
		}
		if _, err := f.ms.record(f.ctx, d); err != nil {
			t.Fatalf("the held manifest's record: %v", err)
		}
	})
}

// fsckBeside is a server and an `fsck --repair` beside it, sharing the
// store and the locks (as on S3 or with Redis); only the checker's driver
// is hooked.
func fsckBeside(t *testing.T) (*fixture, driver.Driver, *Registry, *hookDriver) {
	base := driver.Instrument(inmemory.New(), nil)
	shared := NewLocalLocker()
	f := newFixture(t, New(base, Options{Locker: shared}), "race")
	h := newHookDriver(base)
	return f, base, New(h, Options{Locker: shared}), h
}

// A tag fsck finds dangling is pushed again (the same manifest under the
// same tag, the same tag bytes) while the repair removes it: the push,
// acknowledged, keeps its tag.
func TestFsckRepairOfADanglingTagMeetingAPush(t *testing.T) {
	f, base, checker, h := fsckBeside(t)
	payload, d := f.pushImage("v1")
	if err := base.Delete(f.ctx, manifestLinkPath("race", d)); err != nil { // the record lost
		t.Fatal(err)
	}
	f.repo.reg.manifests = newManifestCache(0)
	var push func() error
	h.on("delete", tagPath("race", "v1"), true, func() {
		push = meanwhile(t, f, func() error {
			_, err := f.ms.Put(f.ctx, d.String(), "", payload, "v1")
			return err
		})
	})
	if _, err := checker.Fsck(f.ctx, FsckOptions{Repair: true}); err != nil || push == nil {
		t.Fatal(err, push != nil)
	}
	if err := push(); err != nil {
		t.Fatalf("push during the repair: %v", err)
	}
	mustPullable(t, f, "v1")
}

// A referrer whose record fsck finds missing is pushed again while the
// repair removes its entry: the push, acknowledged, keeps its entry.
func TestFsckRepairOfAStaleReferrerMeetingAPush(t *testing.T) {
	f, base, checker, h := fsckBeside(t)
	payload, sd := f.pushImage("v1")
	ap := mustJSON(t, f.artifact(v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: sd, Size: int64(len(payload))}, sigType, nil))
	rd := f.put(sd.Algorithm().FromBytes(ap).String(), ap).Descriptor.Digest
	if err := base.Delete(f.ctx, manifestLinkPath("race", rd)); err != nil {
		t.Fatal(err)
	}
	f.repo.reg.manifests = newManifestCache(0)
	var push func() error
	h.on("delete", referrerPath("race", sd, rd), true, func() {
		push = meanwhile(t, f, func() error {
			_, err := f.ms.Put(f.ctx, rd.String(), "", ap)
			return err
		})
	})
	if _, err := checker.Fsck(f.ctx, FsckOptions{Repair: true}); err != nil || push == nil {
		t.Fatal(err, push != nil)
	}
	if err := push(); err != nil {
		t.Fatalf("push during the repair: %v", err)
	}
	refs, err := f.ms.Referrers(f.ctx, sd, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(refs, func(x v1.Descriptor) bool { return x.Digest == rd }) {
		t.Fatalf("referrer %s pushed again but missing from the referrers of %s: %v", rd, sd, refs)
	}
}

// A link holding a wrong size that a client deletes just before the
// repair rewrites it stays deleted.
func TestFsckRepairOfALinkSizeMeetingADelete(t *testing.T) {
	f, base, checker, h := fsckBeside(t)
	desc := f.blob(testLayerType, randomContent(100))
	if err := base.PutContent(f.ctx, layerLinkPath("race", desc.Digest), []byte("999")); err != nil {
		t.Fatal(err)
	}
	deleted := false
	h.on("delete", layerLinkPath("race", desc.Digest), true, func() {
		if err := f.repo.Blobs().Delete(f.ctx, desc.Digest); err != nil {
			t.Fatal(err)
		}
		deleted = true
	})
	if _, err := checker.Fsck(f.ctx, FsckOptions{Repair: true}); err != nil || !deleted {
		t.Fatal(err, deleted)
	}
	if _, err := f.repo.Blobs().stat(f.ctx, desc.Digest, false); err == nil {
		t.Fatal("a blob the client deleted is linked again after fsck --repair")
	}
}

// A blob whose bytes were lost is uploaded again while the repair removes
// its dangling link: the upload, acknowledged, keeps its link.
func TestFsckRepairOfADanglingLinkMeetingAnUpload(t *testing.T) {
	f, base, checker, h := fsckBeside(t)
	content := randomContent(100)
	desc := f.blob(testLayerType, content)
	if err := base.Delete(f.ctx, blobPath(desc.Digest)); err != nil {
		t.Fatal(err)
	}
	uploaded := false
	h.on("delete", layerLinkPath("race", desc.Digest), true, func() {
		f.blob(testLayerType, content)
		uploaded = true
	})
	if _, err := checker.Fsck(f.ctx, FsckOptions{Repair: true}); err != nil || !uploaded {
		t.Fatal(err, uploaded)
	}
	if _, err := f.repo.Blobs().stat(f.ctx, desc.Digest, false); err != nil {
		t.Fatalf("a blob uploaded again during the repair: %v", err)
	}
}

// A manifest whose record names another subject than its bytes is missing
// from the record's subject's referrers, and no repair can list it there:
// --repair reports it unrepaired rather than passing over it.
func TestFsckReportsAnUnlistedReferrerItCannotRepair(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		ctx := context.Background()
		drv := reg.driver
		f := newFixture(t, reg, "checked")
		subject := f.put("subject", mustJSON(t, f.image())).Descriptor
		ref := f.put("signed", mustJSON(t, f.artifact(subject, sigType, nil))).Descriptor
		raw, err := drv.GetContent(ctx, manifestLinkPath("checked", ref.Digest))
		if err != nil {
			t.Fatal(err)
		}
		var rec manifestRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		rec.Subject = &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("other"), Size: 1}
		if err := drv.PutContent(ctx, manifestLinkPath("checked", ref.Digest), mustJSON(t, rec)); err != nil {
			t.Fatal(err)
		}
		for _, repair := range []bool{false, true} {
			rep, got := fsckProblems(t, reg, repair)
			if ps := got[ProblemUnlistedReferrer]; len(ps) != 1 || ps[0].Repaired || rep.Repaired != 0 {
				t.Fatalf("repair %v: %+v, %+v", repair, rep, got)
			}
		}
	})
}

// overwrite puts b at p, as damage does.
func overwrite(t *testing.T, drv driver.Driver, p string, b []byte) {
	t.Helper()
	if err := drv.PutContent(context.Background(), p, b); err != nil {
		t.Fatal(err)
	}
}

// A corrupt manifest record, which an index names, is one problem among
// those after it, not the end of the check; the repair writes it again
// from the manifest's bytes, as the push wrote it, or says why it cannot.
func TestFsckGoesOnPastACorruptRecord(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		ctx := context.Background()
		drv := reg.driver
		f := newFixture(t, reg, "app")
		_, m1 := f.pushImage("v1")
		m1Desc, err := f.ms.Stat(ctx, m1.String())
		if err != nil {
			t.Fatal(err)
		}
		f.put("idx", mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{m1Desc}}))
		_, m2 := f.pushImage("v2") // its record and its bytes lost
		pushed, err := drv.GetContent(ctx, manifestLinkPath("app", m1))
		if err != nil {
			t.Fatal(err)
		}
		overwrite(t, drv, manifestLinkPath("app", m1), []byte("garbage\n"))
		overwrite(t, drv, manifestLinkPath("app", m2), []byte(`{}`))
		if err := drv.Delete(ctx, blobPath(m2)); err != nil {
			t.Fatal(err)
		}
		overwrite(t, drv, tagPath("app", "zz"), []byte(digest.FromString("nothing")))

		want := []string{ProblemCorruptRecord, ProblemCorruptRecord, ProblemDanglingLink, ProblemDanglingTag}
		_, got := fsckProblems(t, reg, false)
		if !slices.Equal(kinds(got), want) {
			t.Fatalf("problems %v, want %v", kinds(got), want)
		}
		rep, got := fsckProblems(t, reg, true)
		if !slices.Equal(kinds(got), want) || rep.Repaired != 3 {
			t.Fatalf("repair: %+v %v", rep, got)
		}
		for _, p := range got[ProblemCorruptRecord] {
			switch {
			case p.Digest == m1 && (!p.Repaired || !strings.Contains(p.Detail, "does not decode")):
				t.Errorf("the record with its bytes: %+v", p)
			case p.Digest == m2 && (p.Repaired || !strings.Contains(p.Detail, "push it again")):
				t.Errorf("the record without its bytes: %+v", p)
			}
		}
		if rebuilt, err := drv.GetContent(ctx, manifestLinkPath("app", m1)); err != nil || string(rebuilt) != string(pushed) {
			t.Fatalf("record written again as %s (%v), pushed as %s", rebuilt, err, pushed)
		}
		mustPullable(t, f, "v1")
		mustPullable(t, f, "idx")
		if _, got := fsckProblems(t, reg, true); !slices.Equal(kinds(got), []string{ProblemCorruptRecord}) {
			t.Fatalf("after the repair: %v", kinds(got))
		}
	})
}

// deniedDriver refuses what a file system refuses a user without the
// permission: reads of the files, and anything in the folders, which a
// walk cannot enter. With fail set, it fails with that instead.
type deniedDriver struct {
	driver.Driver
	files, folders []string
	fail           error
}

func (d *deniedDriver) deny(p string, self, read bool) error {
	err := d.fail
	if err == nil {
		err = &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
	}
	for _, dir := range d.folders {
		if self && p == dir || strings.HasPrefix(p, dir+"/") {
			return err
		}
	}
	if read && slices.Contains(d.files, p) {
		return err
	}
	return nil
}

func (d *deniedDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := d.deny(p, true, true); err != nil {
		return nil, err
	}
	return d.Driver.GetContent(ctx, p)
}

func (d *deniedDriver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := d.deny(p, true, true); err != nil {
		return nil, err
	}
	return d.Driver.Reader(ctx, p, offset)
}

func (d *deniedDriver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := d.deny(p, false, false); err != nil {
		return driver.FileInfo{}, err
	}
	return d.Driver.Stat(ctx, p)
}

func (d *deniedDriver) List(ctx context.Context, p string) ([]string, error) {
	if err := d.deny(p, true, false); err != nil {
		return nil, err
	}
	return d.Driver.List(ctx, p)
}

func (d *deniedDriver) Walk(ctx context.Context, p, from string, fn driver.WalkFunc) error {
	if err := d.deny(p, true, false); err != nil {
		return err
	}
	return d.Driver.Walk(ctx, p, from, func(fi driver.FileInfo) error {
		if err := d.deny(fi.Path, false, false); err != nil {
			return err
		}
		return fn(fi)
	})
}

// Files and folders that cannot be read are each a problem naming them
// and why, and the check goes on past them to the damage after; a failure
// of the storage itself still ends it.
func TestFsckGoesOnPastWhatItCannotRead(t *testing.T) {
	for _, name := range []string{"inmemory", "filesystem"} {
		t.Run(name, func(t *testing.T) {
			denied := &deniedDriver{Driver: manifestDrivers[name](t)}
			reg := New(denied, Options{})
			f := newFixture(t, reg, "app")
			layer := func(reference string) digest.Digest {
				img := f.image()
				f.put(reference, mustJSON(t, img))
				return img.Layers[0].Digest
			}
			file := layer("v1")
			folder := layer("v2")
			for path.Dir(blobPath(folder)) == path.Dir(blobPath(file)) {
				folder = layer("v2")
			}
			_, record := f.pushImage("v3")
			newFixture(t, reg, "bad").pushImage("v1")
			later := newFixture(t, reg, "zz")
			later.pushImage("v1")
			overwrite(t, reg.driver, tagPath("zz", "dangling"), []byte(digest.FromString("nothing")))

			denied.files = []string{blobPath(file), manifestLinkPath("app", record)}
			denied.folders = []string{path.Dir(blobPath(folder)), tagsPath("app"), repoPath("bad")}
			want := append(slices.Clone(denied.files), denied.folders...)
			slices.Sort(want)
			for _, repair := range []bool{false, true} {
				rep, got := fsckProblems(t, reg, repair)
				var unreadable []string
				for _, p := range got[ProblemUnreadable] {
					if !strings.Contains(p.Detail, "permission denied") {
						t.Errorf("%s: cause not named: %q", p.Path, p.Detail)
					}
					unreadable = append(unreadable, p.Path)
				}
				slices.Sort(unreadable)
				if !slices.Equal(unreadable, want) || len(got[ProblemDanglingTag]) != 1 || rep.Problems != len(want)+1 {
					t.Fatalf("repair %v: unreadable %v, want %v; problems %v", repair, unreadable, want, kinds(got))
				}
			}

			denied.fail = driver.UnavailableError{Driver: name, Err: errors.New("connection refused")}
			if _, err := reg.Fsck(context.Background(), FsckOptions{}); !driver.IsUnavailable(err) {
				t.Fatalf("fsck over a storage that fails: %v", err)
			}
		})
	}
}

// A referrer entry that does not decode as its referrer's descriptor,
// which breaks its subject's referrers list, is reported, and the repair
// writes it again from the referrer's record and bytes.
func TestFsckChecksReferrerEntries(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		ctx := context.Background()
		drv := reg.driver
		f := newFixture(t, reg, "app")
		subject := f.put("v1", mustJSON(t, f.image())).Descriptor
		var entries [][]byte
		for _, damage := range [][]byte{[]byte("garbage\n"), mustJSON(t, v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("other"), Size: 9})} {
			sig := f.put("sig"+strconv.Itoa(len(entries)), mustJSON(t, f.artifact(subject, sigType, nil))).Descriptor
			entry := referrerPath("app", subject.Digest, sig.Digest)
			pushed, err := drv.GetContent(ctx, entry)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, pushed)
			overwrite(t, drv, entry, damage)
		}
		_, got := fsckProblems(t, reg, false)
		if !slices.Equal(kinds(got), []string{ProblemCorruptReferrer, ProblemCorruptReferrer}) {
			t.Fatalf("problems %v", kinds(got))
		}
		if rep, got := fsckProblems(t, reg, true); rep.Repaired != 2 || len(got[ProblemCorruptReferrer]) != 2 {
			t.Fatalf("repair: %+v %v", rep, got)
		}
		refs, err := f.ms.Referrers(ctx, subject.Digest, "")
		if err != nil || len(refs) != 2 {
			t.Fatalf("referrers after the repair: %v %v", refs, err)
		}
		for _, ref := range refs {
			raw, err := drv.GetContent(ctx, referrerPath("app", subject.Digest, ref.Digest))
			if err != nil || !slices.ContainsFunc(entries, func(b []byte) bool { return string(b) == string(raw) }) {
				t.Fatalf("entry written again as %s (%v), pushed as %s", raw, err, entries)
			}
		}
		if _, got := fsckProblems(t, reg, false); len(got) != 0 {
			t.Fatalf("after the repair: %v", kinds(got))
		}
	})
}

// The repair of a manifest whose bytes are damaged removes the tags naming
// it, and names each, so that they can be pushed again; a tag that named
// it once and names another manifest now is neither removed nor named.
func TestFsckRepairNamesTheTagsItRemoves(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		ctx := context.Background()
		f := newFixture(t, reg, "app")
		payload, m1 := f.pushImage("v1")
		f.put(m1.String(), payload, "e", "d", "c", "b", "a", "moved")
		f.pushImage("moved")
		b, err := reg.driver.GetContent(ctx, blobPath(m1))
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		overwrite(t, reg.driver, blobPath(m1), b)

		// A check names the tags a repair would remove.
		_, got := fsckProblems(t, reg, false)
		if ps := got[ProblemManifestBytes]; len(ps) != 1 || ps[0].Repaired || !slices.Equal(ps[0].Tags, []string{"a", "b", "c", "d", "e", "v1"}) {
			t.Fatalf("manifest with corrupt bytes, unrepaired: %+v", ps)
		}
		_, got = fsckProblems(t, reg, true)
		ps := got[ProblemManifestBytes]
		if len(ps) != 1 || !ps[0].Repaired || !slices.Equal(ps[0].Tags, []string{"a", "b", "c", "d", "e", "v1"}) {
			t.Fatalf("manifest without its bytes: %+v", ps)
		}
		f.wantUnknown("removed by the repair", "v1", "a", "e")
		mustPullable(t, f, "moved")

		// Reported without --repair too, as the tags a repair removes.
		lostPayload, lost := f.pushImage("lost")
		f.put(lost.String(), lostPayload, "again")
		if err := reg.driver.Delete(ctx, blobPath(lost)); err != nil {
			t.Fatal(err)
		}
		_, got = fsckProblems(t, reg, false)
		if ps := got[ProblemManifestBytes]; len(ps) != 1 || ps[0].Repaired || !slices.Equal(ps[0].Tags, []string{"again", "lost"}) {
			t.Fatalf("manifest without its bytes, unrepaired: %+v", ps)
		}
	})
}

// Files among the tags that are no tag (a file manager's, one in a folder)
// are reported as unexpected, as the listings skip them, and left: a
// repair does not take them for dangling tags.
func TestFsckReportsStraysAmongTheTags(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "app")
		_, d := f.pushImage("v1")
		strays := []string{tagsPath("app") + "/.DS_Store", tagsPath("app") + "/v1x/sub"}
		for _, p := range strays {
			overwrite(t, reg.driver, p, []byte(d))
		}
		want := []string{ProblemUnexpectedObject, ProblemUnexpectedObject}
		for _, repair := range []bool{false, true} {
			if _, got := fsckProblems(t, reg, repair); !slices.Equal(kinds(got), want) {
				t.Fatalf("repair %v: problems %v, want %v", repair, kinds(got), want)
			}
		}
		for _, p := range strays {
			if _, err := reg.driver.GetContent(f.ctx, p); err != nil {
				t.Errorf("%s after a repair: %v", p, err)
			}
		}
	})
}

// fsck tells a layer the repository no longer links, its bytes stored (a
// client's DELETE of the blob), from one whose bytes are gone: the repair
// links the first again, and says of the second to push the image again.
func TestFsckTellsALostLinkFromLostBytes(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "app")
		content := randomContent(100)
		unlinked, lost := f.image(), f.image()
		lost.Layers = []v1.Descriptor{f.blob(testLayerType, content)}
		f.put("unlinked", mustJSON(t, unlinked))
		lostM := f.put("lost", mustJSON(t, lost))
		ul, ll := unlinked.Layers[0].Digest, lost.Layers[0].Digest
		if err := f.repo.Blobs().Delete(f.ctx, ul); err != nil {
			t.Fatal(err)
		}
		if err := f.repo.Blobs().Delete(f.ctx, ll); err != nil {
			t.Fatal(err)
		}
		if err := reg.driver.Delete(f.ctx, blobPath(ll)); err != nil {
			t.Fatal(err)
		}

		wantUnlinked := ul.String() + ": its bytes are stored, but the repository no longer links them (the blob was deleted from it, or its link lost), so the image does not pull: a repair links it again"
		wantLost := ll.String() + ": its bytes are missing: push the image (its layers) again"
		for _, repair := range []bool{false, true} {
			_, got := fsckProblems(t, reg, repair)
			if !slices.Equal(kinds(got), []string{ProblemUnlinkedBlob, ProblemMissingBlob}) {
				t.Fatalf("repair=%v: %v", repair, got)
			}
			u, l := got[ProblemUnlinkedBlob][0], got[ProblemMissingBlob][0]
			if u.Detail != wantUnlinked || u.Repaired != repair {
				t.Fatalf("repair=%v: the unlinked layer reported %+v", repair, u)
			}
			if l.Detail != wantLost || l.Repaired || l.Digest != lostM.Descriptor.Digest {
				t.Fatalf("repair=%v: the lost layer reported %+v", repair, l)
			}
		}
		mustPullable(t, f, "unlinked")
		if _, got := fsckProblems(t, reg, true); !slices.Equal(kinds(got), []string{ProblemMissingBlob}) {
			t.Fatalf("after the repair: %v", got)
		}
		// Pushing the lost layer again brings that image back.
		f.blob(testLayerType, content)
		mustPullable(t, f, "lost")
	})
}
