package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Notifications configures the endpoints events are posted to.
type Notifications struct {
	Endpoints []Endpoint `yaml:"endpoints" doc:"Where events are posted, a list; each item takes name, url, headers (a header to a list of values, e.g. Authorization: [Bearer xyz]), timeout (5s), backoff (1s), maxbackoff (1m), maxqueue (10000), maxbatch (100), ignoredmediatypes, ignore (mediatypes, actions) and disabled. In the environment or --set, the whole list as YAML: [{name: scan, url: https://scan.example/events}]."`
}

// Endpoint is one receiver of events. Its keys are Distribution's, so a
// notifications section written for it loads here, but for threshold:
// Distribution's counts failures before a pause, which Lading does not
// have (it pauses after the first), and a key that read the same and
// meant something else would mislead; maxqueue bounds the memory instead.
type Endpoint struct {
	Name              string              `yaml:"name" doc:"Names the endpoint in logs and metrics; unique."`
	URL               URL                 `yaml:"url" doc:"http:// or https:// URL events are POSTed to."`
	Headers           map[string][]Secret `yaml:"headers" doc:"Headers sent with every request, each a list of values; never printed."`
	Timeout           time.Duration       `yaml:"timeout" doc:"How long one delivery may take before it counts as failed."`
	Backoff           time.Duration       `yaml:"backoff" doc:"Wait after a failed delivery before the next try; it doubles with each failure in a row."`
	MaxBackoff        time.Duration       `yaml:"maxbackoff" doc:"Longest wait between tries."`
	MaxQueue          int                 `yaml:"maxqueue" doc:"Events held in memory for the endpoint; when full, the oldest are dropped and counted."`
	MaxBatch          int                 `yaml:"maxbatch" doc:"Most events in one request; 1 sends each alone, as Distribution does."`
	IgnoredMediaTypes []string            `yaml:"ignoredmediatypes" doc:"Target media types not sent."`
	Ignore            Ignore              `yaml:"ignore" doc:"Events not sent."`
	Disabled          bool                `yaml:"disabled" doc:"Keep the endpoint configured but send it nothing."`
}

// Ignore filters an endpoint's events.
type Ignore struct {
	MediaTypes []string `yaml:"mediatypes" doc:"Target media types not sent."`
	Actions    []string `yaml:"actions" doc:"Actions (push, pull, mount, delete) not sent."`
}

// Actions are the events' actions, as Distribution names them.
var Actions = []string{"push", "pull", "mount", "delete"}

// setDefaults fills an endpoint before its keys are read, since a list
// item has no place in Default.
func (e *Endpoint) setDefaults() {
	*e = Endpoint{
		Timeout:    5 * time.Second,
		Backoff:    time.Second,
		MaxBackoff: time.Minute,
		MaxQueue:   10000,
		MaxBatch:   100,
	}
}

// URL is a URL whose password, if it has one, never prints.
type URL string

// Reveal returns the URL itself, password included.
func (u URL) Reveal() string { return string(u) }

func (u URL) String() string {
	p, err := url.Parse(string(u))
	if err != nil {
		if string(u) == "" {
			return ""
		}
		return "[unparsable URL]"
	}
	return p.Redacted()
}

// GoString covers %#v, which does not use String.
func (u URL) GoString() string { return fmt.Sprintf("%q", u.String()) }

// LogValue keeps the password out of slog output.
func (u URL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// MarshalText keeps the password out of JSON and YAML.
func (u URL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

func (v *validator) notifications(n *Notifications) {
	names := map[string]string{}
	for i := range n.Endpoints {
		e := &n.Endpoints[i]
		at := func(k string) string { return fmt.Sprintf("notifications.endpoints[%d].%s", i, k) }
		switch first, dup := names[e.Name]; {
		case e.Name == "":
			v.fail(at("name"), "must be set: it names the endpoint in logs and metrics")
		case dup:
			v.fail(at("name"), "%q is also the name of %s; names must differ", e.Name, first)
		default:
			names[e.Name] = fmt.Sprintf("notifications.endpoints[%d]", i)
		}
		for h := range e.Headers {
			if h == "" || strings.ContainsAny(h, " \t\r\n:") {
				v.fail(at("headers"), "%q is not a header name", h)
			}
		}
		if e.URL == "" {
			v.fail(at("url"), "must be set, as an http:// or https:// URL")
		}
		v.url(at("url"), string(e.URL))
		v.positive(at("timeout"), e.Timeout)
		v.positive(at("backoff"), e.Backoff)
		if e.MaxBackoff < e.Backoff {
			v.fail(at("maxbackoff"), "%s must be at least backoff (%s)", formatDuration(e.MaxBackoff), formatDuration(e.Backoff))
		}
		if e.MaxQueue < 1 {
			v.fail(at("maxqueue"), "%d must be 1 or more", e.MaxQueue)
		}
		if e.MaxBatch < 1 {
			v.fail(at("maxbatch"), "%d must be 1 or more", e.MaxBatch)
		}
		for j, a := range e.Ignore.Actions {
			v.oneOf(fmt.Sprintf("%s[%d]", at("ignore.actions"), j), a, Actions...)
		}
	}
}
