package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The scenarios by the name their flag selects.
var allScenarios = []scenario{
	{name: "push", metrics: []metric{mMBps("push monolithic"), mRSS, mCPU, mClientCPU}, run: runPushMonolithic},
	{name: "chunked", metrics: []metric{mMBps("push 16 MiB chunks"), mRSS, mCPU, mClientCPU}, run: runPushChunked},
	{name: "pull", metrics: []metric{mMBps("pull"), mMs("1 MiB range in the middle"), mRSS, mCPU, mClientCPU}, run: runPull},
	{name: "small", metrics: append(append(append(opsMetrics("push"), opsMetrics("HEAD")...), opsMetrics("GET")...), mRSS, mCPU, mClientCPU), run: runSmall},
	{name: "manifests", metrics: append(append(opsMetrics("PUT"), opsMetrics("GET")...), mMs("tags list"), mRSS, mCPU, mClientCPU), run: runManifests},
	{name: "image", metrics: []metric{mMBps("image push"), mMBps("image pull"), mRSS, mCPU, mClientCPU}, run: runImage},
}

func (b *bench) bigContent(scenario string, t *target, roundNo int) (content, digest.Digest) {
	c := content{seed: b.seed(scenario, roundNo, t.index), size: b.s.blobSize}
	return c, c.digest()
}

func runPushMonolithic(ctx context.Context, b *bench, t *target, roundNo int, rec *recorder) error {
	push := t.c.pushMonolithic
	if b.s.singlePost {
		push = t.c.pushSingle
	}
	return timePush(ctx, b, t, roundNo, rec, "push", "push monolithic", func(repo string, c content, d digest.Digest) error {
		return push(ctx, repo, d, c.reader(), c.size)
	})
}

func runPushChunked(ctx context.Context, b *bench, t *target, roundNo int, rec *recorder) error {
	return timePush(ctx, b, t, roundNo, rec, "chunked", "push 16 MiB chunks", func(repo string, c content, d digest.Digest) error {
		return t.c.pushChunked(ctx, repo, c, d, b.s.chunkSize)
	})
}

// timePush pushes a new large blob, its digest computed untimed, and
// leaves it for the pull.
func timePush(ctx context.Context, b *bench, t *target, roundNo int, rec *recorder, scenario, metric string, push func(repo string, c content, d digest.Digest) error) error {
	c, d := b.bigContent(scenario, t, roundNo)
	repo := b.repo(scenario, t, roundNo)
	rec.start()
	t0 := time.Now()
	err := push(repo, c, d)
	el := time.Since(t0)
	rec.stop()
	if err != nil {
		return err
	}
	rec.set(metric, mbps(c.size, el))
	t.bigBlob = &pushedBlob{repo: repo, d: d, size: c.size}
	return nil
}

// runPull reads back the blob the push scenarios left (pushing one,
// untimed, when they did not run).
func runPull(ctx context.Context, b *bench, t *target, roundNo int, rec *recorder) error {
	blob := t.bigBlob
	if blob == nil || blob.size != b.s.blobSize {
		c, d := b.bigContent("pull", t, roundNo)
		repo := b.repo("pull", t, roundNo)
		if err := t.c.pushMonolithic(ctx, repo, d, c.reader(), c.size); err != nil {
			return fmt.Errorf("untimed push: %w", err)
		}
		blob = &pushedBlob{repo: repo, d: d, size: c.size}
	}
	t.bigBlob = nil // a pull reads each blob once
	rec.start()
	t0 := time.Now()
	n, err := t.c.getBlob(ctx, blob.repo, blob.d, "")
	el := time.Since(t0)
	if err != nil {
		return err
	}
	if n != blob.size {
		return fmt.Errorf("pull: %d bytes, want %d", n, blob.size)
	}
	rec.set("pull", mbps(n, el))

	rangeLen := min(b.s.rangeSize, blob.size)
	off := (blob.size - rangeLen) / 2
	lat, err := medianLatency(b.s.rangeReads, rangeLen, "range read", func() (int64, error) {
		return t.c.getBlob(ctx, blob.repo, blob.d, rangeHeader(off, rangeLen))
	})
	rec.stop()
	if err != nil {
		return err
	}
	rec.set("1 MiB range in the middle", lat)
	return nil
}

// runSmall pushes many small blobs at once, then HEADs and GETs each.
func runSmall(ctx context.Context, b *bench, t *target, roundNo int, rec *recorder) error {
	repo := b.repo("small", t, roundNo)
	n := b.s.smallCount
	blobs := make([][]byte, n)
	ds := make([]digest.Digest, n)
	for i := range n {
		blobs[i] = content{seed: b.seed("small", roundNo, t.index, i), size: b.s.smallSize}.bytes()
		ds[i] = digest.FromBytes(blobs[i])
	}
	ws, closeWorkers := t.c.workers(b.s.concurrency)
	defer closeWorkers()
	rec.start()
	push := func(ctx context.Context, w, i int) error {
		if b.s.singlePost {
			return ws[w].pushSingle(ctx, repo, ds[i], bytes.NewReader(blobs[i]), int64(len(blobs[i])))
		}
		return ws[w].pushMonolithic(ctx, repo, ds[i], bytes.NewReader(blobs[i]), int64(len(blobs[i])))
	}
	lat, wall, err := repeatFor(ctx, b.s.concurrency, n, 0, push)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	rec.setOps("push", lat, wall)

	lat, wall, err = repeatFor(ctx, b.s.concurrency, n, b.s.readTime, func(ctx context.Context, w, i int) error {
		size, err := ws[w].headBlob(ctx, repo, ds[i])
		if err == nil && size != int64(len(blobs[i])) {
			err = fmt.Errorf("HEAD %s: Content-Length %d, want %d", ds[i], size, len(blobs[i]))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("HEAD: %w", err)
	}
	rec.setOps("HEAD", lat, wall)

	lat, wall, err = repeatFor(ctx, b.s.concurrency, n, b.s.readTime, func(ctx context.Context, w, i int) error {
		got, err := ws[w].getBlob(ctx, repo, ds[i], "")
		if err == nil && got != int64(len(blobs[i])) {
			err = fmt.Errorf("GET %s: %d bytes, want %d", ds[i], got, len(blobs[i]))
		}
		return err
	})
	rec.stop()
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	rec.setOps("GET", lat, wall)
	return nil
}

// runManifests PUTs manifests under distinct tags, GETs them by tag and
// lists the tags. The blobs they name are pushed untimed first.
func runManifests(ctx context.Context, b *bench, t *target, roundNo int, rec *recorder) error {
	repo := b.repo("manifests", t, roundNo)
	seed := b.seed("manifests", roundNo, t.index)
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"seed":"%d"}}}`, seed))
	layer := content{seed: seed, size: 4 << 10}.bytes()
	cfgDesc := v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	layerDesc := v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	for _, blob := range []struct {
		d []byte
		v v1.Descriptor
	}{{cfg, cfgDesc}, {layer, layerDesc}} {
		if err := t.c.pushMonolithic(ctx, repo, blob.v.Digest, bytes.NewReader(blob.d), blob.v.Size); err != nil {
			return fmt.Errorf("untimed blob push: %w", err)
		}
	}
	n := b.s.manifestCount
	payloads := make([][]byte, n)
	for i := range n {
		m := v1.Manifest{
			Versioned:   specs.Versioned{SchemaVersion: 2},
			MediaType:   v1.MediaTypeImageManifest,
			Config:      cfgDesc,
			Layers:      []v1.Descriptor{layerDesc},
			Annotations: map[string]string{"org.opencontainers.image.revision": fmt.Sprintf("%d-%d", seed, i)},
		}
		p, err := json.Marshal(m)
		if err != nil {
			return err
		}
		payloads[i] = p
	}
	tag := func(i int) string { return fmt.Sprintf("t%04d", i) }

	ws, closeWorkers := t.c.workers(b.s.concurrency)
	defer closeWorkers()
	rec.start()
	lat, wall, err := repeatFor(ctx, b.s.concurrency, n, 0, func(ctx context.Context, w, i int) error {
		return ws[w].putManifest(ctx, repo, tag(i), v1.MediaTypeImageManifest, payloads[i])
	})
	if err != nil {
		return fmt.Errorf("PUT: %w", err)
	}
	rec.setOps("PUT", lat, wall)

	lat, wall, err = repeatFor(ctx, b.s.concurrency, n, b.s.readTime, func(ctx context.Context, w, i int) error {
		got, err := ws[w].getManifest(ctx, repo, tag(i), v1.MediaTypeImageManifest)
		if err == nil && got != int64(len(payloads[i])) {
			err = fmt.Errorf("GET %s: %d bytes, want %d", tag(i), got, len(payloads[i]))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	rec.setOps("GET", lat, wall)

	lists, err := medianLatency(b.s.tagListReads, int64(n), "tags list", func() (int64, error) {
		count, err := t.c.tags(ctx, repo)
		return int64(count), err
	})
	rec.stop()
	if err != nil {
		return err
	}
	rec.set("tags list", lists)
	return nil
}

// medianLatency calls fn times times, one after the other, checks that each
// call returns want, and returns the median latency in ms.
func medianLatency(times int, want int64, what string, fn func() (int64, error)) (float64, error) {
	var lat []float64
	for range times {
		t0 := time.Now()
		got, err := fn()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		if got != want {
			return 0, fmt.Errorf("%s: got %d, want %d", what, got, want)
		}
		lat = append(lat, ms(time.Since(t0)))
	}
	return median(lat), nil
}
