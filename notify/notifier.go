package notify

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/logging"
)

// Notifier records events and hands each to the endpoints that want it.
// A nil *Notifier records nothing, so that with no endpoints the request
// path pays for one comparison.
type Notifier struct {
	endpoints []*endpoint
	source    Source
	// order numbers events and queues them, so that every endpoint
	// gets concurrent requests' events in one order, that of their ids.
	order     sync.Mutex
	seq       uint64
	closeOnce sync.Once
}

// New starts a sender for each endpoint and returns the Notifier feeding
// them; with no endpoints it returns nil. addr names this process in
// every event's source (host:port), next to an instance id made here.
func New(endpoints []EndpointConfig, addr string, log *slog.Logger) *Notifier {
	if len(endpoints) == 0 {
		return nil
	}
	n := &Notifier{source: Source{Addr: addr, InstanceID: newInstanceID()}}
	for _, cfg := range endpoints {
		e := newEndpoint(cfg, log)
		n.endpoints = append(n.endpoints, e)
		go e.run()
	}
	return n
}

// newInstanceID returns a random id in a UUID's shape, the shape
// Distribution's instance ids have.
func newInstanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// InstanceID is the id every event of this Notifier carries in its source.
func (n *Notifier) InstanceID() string { return n.source.InstanceID }

// Manifest records action on the manifest desc of repo, by tag when tag
// is not empty. A delete names only the digest or the tag.
func (n *Notifier) Manifest(r *http.Request, action, repo string, desc v1.Descriptor, tag string) {
	if n == nil {
		return
	}
	t := Target{Repository: repo, Digest: desc.Digest, Tag: tag}
	if action != ActionDelete {
		t.MediaType, t.Size, t.Length = desc.MediaType, desc.Size, desc.Size
		t.URL = baseURL(r) + "/v2/" + repo + "/manifests/" + desc.Digest.String()
	}
	n.record(r, action, t)
}

// Blob records action on the blob desc of repo; from is the repository a
// mounted blob came from.
func (n *Notifier) Blob(r *http.Request, action, repo string, desc v1.Descriptor, from string) {
	if n == nil {
		return
	}
	t := Target{Repository: repo, Digest: desc.Digest, FromRepository: from}
	if action != ActionDelete {
		t.MediaType, t.Size, t.Length = BlobMediaType, desc.Size, desc.Size
		t.URL = baseURL(r) + "/v2/" + repo + "/blobs/" + desc.Digest.String()
	}
	n.record(r, action, t)
}

func (n *Notifier) record(r *http.Request, action string, t Target) {
	ctx := r.Context()
	ev := Event{
		Action: action,
		Target: t,
		Request: Request{
			ID:        logging.RequestID(ctx),
			Addr:      r.RemoteAddr,
			Host:      r.Host,
			Method:    r.Method,
			UserAgent: r.UserAgent(),
		},
		Actor:  Actor{Name: httpx.User(ctx)},
		Source: n.source,
	}
	n.order.Lock()
	defer n.order.Unlock()
	n.seq++
	ev.ID = n.source.InstanceID + "-" + strconv.FormatUint(n.seq, 10)
	ev.Timestamp = time.Now().UTC()
	for _, e := range n.endpoints {
		if e.wants(&ev) {
			e.push(ev)
		}
	}
}

// baseURL is how the client reached the registry, as Distribution builds
// its events' URLs: the request's Host, by the scheme the client used
// (through a trusted proxy ending TLS, the one it said).
func baseURL(r *http.Request) string {
	return httpx.Scheme(r) + "://" + r.Host
}

// Stats returns every endpoint's counts, in the configured order.
func (n *Notifier) Stats() []Stats {
	if n == nil {
		return nil
	}
	out := make([]Stats, len(n.endpoints))
	for i, e := range n.endpoints {
		out[i] = e.stats()
	}
	return out
}

// Close sends what is queued until ctx ends, then drops what is left and
// stops the senders. It returns how many events were dropped by the stop:
// still queued, or recorded once it began. Calls after the first do
// nothing.
func (n *Notifier) Close(ctx context.Context) (dropped int64) {
	if n == nil {
		return 0
	}
	n.closeOnce.Do(func() { dropped = n.close(ctx) })
	return dropped
}

func (n *Notifier) close(ctx context.Context) (dropped int64) {
	before := make([]int64, len(n.endpoints))
	for i, e := range n.endpoints {
		before[i] = e.dropped.Load()
		close(e.closing)
	}
	stop := context.AfterFunc(ctx, func() {
		for _, e := range n.endpoints {
			e.cancel()
		}
	})
	defer stop()
	for i, e := range n.endpoints {
		<-e.done
		e.cancel()
		dropped += e.dropped.Load() - before[i]
	}
	return dropped
}
