// Package notify posts registry events (a manifest or blob pushed, pulled,
// mounted, deleted) to HTTP endpoints, in CNCF Distribution's envelope, so
// that receivers written for it (scanners, CI triggers, replication,
// audit) work unchanged.
//
// Each endpoint has a bounded queue in memory and one sender. Recording an
// event never blocks and never waits on the network: a full queue drops
// its oldest event, counted. Events are not durable: a crash loses what
// was queued, as with Distribution.
package notify

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// MediaType is the Content-Type of a request's body: Distribution's, for
// the envelope whose events have the fields below.
const MediaType = "application/vnd.docker.distribution.events.v1+json"

// The actions of events.
const (
	ActionPush   = "push"
	ActionPull   = "pull"
	ActionMount  = "mount"
	ActionDelete = "delete"
)

// BlobMediaType is the media type of a blob event's target: the registry
// does not know what a blob is until a manifest names it, and receivers
// that want manifest events alone ignore this type, as they do with
// Distribution.
const BlobMediaType = "application/octet-stream"

// Envelope is a request's body: one or more events, not necessarily
// related.
type Envelope struct {
	Events []Event `json:"events"`
}

// Event is one thing the registry did.
type Event struct {
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Action    string    `json:"action"`
	Target    Target    `json:"target"`
	Request   Request   `json:"request"`
	Actor     Actor     `json:"actor"`
	Source    Source    `json:"source"`
}

// Target is what the event was about. A delete names only the digest (or
// the tag) and repository, as Distribution's does.
type Target struct {
	MediaType  string        `json:"mediaType,omitempty"`
	Digest     digest.Digest `json:"digest,omitempty"`
	Size       int64         `json:"size,omitempty"`
	Length     int64         `json:"length,omitempty"` // Size again, for older receivers
	Repository string        `json:"repository,omitempty"`
	// FromRepository is where a mounted blob came from.
	FromRepository string `json:"fromRepository,omitempty"`
	URL            string `json:"url,omitempty"`
	Tag            string `json:"tag,omitempty"`
}

// Request is the request that caused the event.
type Request struct {
	ID        string `json:"id"`
	Addr      string `json:"addr,omitempty"`
	Host      string `json:"host,omitempty"`
	Method    string `json:"method"`
	UserAgent string `json:"useragent"`
}

// Actor is who the request acted for: empty for an anonymous one.
type Actor struct {
	Name string `json:"name,omitempty"`
}

// Source is the registry process that served the request: with several
// replicas, each sends the events of the requests it served, and
// InstanceID (new at each start) tells them apart.
type Source struct {
	Addr       string `json:"addr,omitempty"`
	InstanceID string `json:"instanceID,omitempty"`
}
