package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

const endpointsYAML = `notifications:
  endpoints:
    - name: scan
      url: https://hook:pa55word@scan.example/events
      headers:
        Authorization: [Bearer t0ken]
        X-Single: one
      timeout: 2s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        actions: [pull]
    - name: audit
      url: http://audit.example/
      maxqueue: 10
      maxbatch: 1
      disabled: true
`

func TestEndpointsLoad(t *testing.T) {
	c, err := Parse("lading.yaml", []byte(endpointsYAML))
	if err != nil {
		t.Fatal(err)
	}
	eps := c.Notifications.Endpoints
	if len(eps) != 2 {
		t.Fatalf("%d endpoints", len(eps))
	}
	scan, audit := eps[0], eps[1]
	if scan.Name != "scan" || scan.URL.Reveal() != "https://hook:pa55word@scan.example/events" || scan.Timeout != 2*time.Second {
		t.Errorf("scan: %+v", scan)
	}
	if got := scan.Headers["Authorization"]; len(got) != 1 || got[0].Reveal() != "Bearer t0ken" {
		t.Errorf("Authorization: %v", got)
	}
	if got := scan.Headers["X-Single"]; len(got) != 1 || got[0].Reveal() != "one" {
		t.Errorf("a single value is a list of one: %v", got)
	}
	if !reflect.DeepEqual(scan.IgnoredMediaTypes, []string{"application/octet-stream"}) || !reflect.DeepEqual(scan.Ignore.Actions, []string{"pull"}) {
		t.Errorf("ignores: %+v", scan)
	}
	// Keys not given keep their defaults, item by item.
	var def Endpoint
	def.setDefaults()
	if scan.Backoff != def.Backoff || scan.MaxQueue != def.MaxQueue || audit.Timeout != def.Timeout {
		t.Errorf("defaults not kept: %+v %+v", scan, audit)
	}
	if audit.MaxQueue != 10 || audit.MaxBatch != 1 || !audit.Disabled {
		t.Errorf("audit: %+v", audit)
	}

	// The environment replaces the list the file gave.
	c, err = Load(writeFile(t, endpointsYAML), []string{`LADING_NOTIFICATIONS_ENDPOINTS=[{name: ci, url: "http://ci.example/hook", backoff: 3s, maxbackoff: 3s}]`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if eps := c.Notifications.Endpoints; len(eps) != 1 || eps[0].Name != "ci" || eps[0].Backoff != 3*time.Second || eps[0].MaxQueue != def.MaxQueue {
		t.Errorf("from the environment: %+v", eps)
	}
	c, err = Load(writeFile(t, endpointsYAML), nil, parseFlags(t, "--set", "notifications.endpoints=[]"))
	if err != nil || len(c.Notifications.Endpoints) != 0 {
		t.Errorf("--set of an empty list: %v %+v", err, c)
	}
}

func TestEndpointsPrintWithoutSecrets(t *testing.T) {
	c, err := Parse("lading.yaml", []byte(endpointsYAML))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", *c, "endpoints", c.Notifications.Endpoints)
	asJSON, _ := json.Marshal(c)
	for name, out := range map[string]string{
		"String": c.String(),
		"%+v":    fmt.Sprintf("%+v", *c),
		"%#v":    fmt.Sprintf("%#v", *c),
		"slog":   logged.String(),
		"json":   string(asJSON),
	} {
		if strings.Contains(out, "pa55word") || strings.Contains(out, "t0ken") {
			t.Errorf("%s shows a secret: %s", name, out)
		}
	}
	back, err := Parse("string", []byte(c.String()))
	if err != nil {
		t.Fatalf("String does not load back: %v\n%s", err, c)
	}
	got := back.Notifications.Endpoints
	if len(got) != 2 || got[0].Name != "scan" || got[0].Timeout != 2*time.Second || got[1].MaxBatch != 1 || got[0].URL.Reveal() != "https://hook:xxxxx@scan.example/events" {
		t.Errorf("String round trip: %+v", got)
	}
}

func TestBadEndpoints(t *testing.T) {
	refused(t, []badConfig{
		{name: "bad url", yaml: "notifications:\n  endpoints:\n    - name: a\n      url: ftp://x:secret@host/\n",
			want: []string{`notifications.endpoints[0].url: "ftp://x:xxxxx@host/" is not an http:// or https:// URL`}},
		{name: "no url", yaml: "notifications:\n  endpoints:\n    - name: a\n",
			want: []string{"notifications.endpoints[0].url: must be set"}},
		{name: "no name", yaml: "notifications:\n  endpoints:\n    - url: http://a/\n",
			want: []string{"notifications.endpoints[0].name: must be set"}},
		{name: "duplicate names", yaml: "notifications:\n  endpoints:\n    - {name: a, url: http://a/}\n    - {name: a, url: http://b/}\n",
			want: []string{`notifications.endpoints[1].name: "a" is also the name of notifications.endpoints[0]`, "line 4"}},
		{name: "negative timeout", yaml: "notifications:\n  endpoints:\n    - name: a\n      url: http://a/\n      timeout: -1s\n",
			want: []string{"notifications.endpoints[0].timeout: -1s must be greater than 0", "lading.yaml line 5"}},
		{name: "negative backoff", env: []string{"LADING_NOTIFICATIONS_ENDPOINTS=[{name: a, url: http://a/, backoff: -2s}]"},
			want: []string{"notifications.endpoints[0].backoff: -2s must be greater than 0", "env LADING_NOTIFICATIONS_ENDPOINTS"}},
		{name: "cap below backoff", yaml: "notifications:\n  endpoints:\n    - {name: a, url: http://a/, backoff: 2m}\n",
			want: []string{"notifications.endpoints[0].maxbackoff: 1m must be at least backoff (2m)"}},
		{name: "queue", yaml: "notifications:\n  endpoints:\n    - {name: a, url: http://a/, maxqueue: 0, maxbatch: -1}\n",
			want: []string{"notifications.endpoints[0].maxqueue: 0 must be 1 or more", "notifications.endpoints[0].maxbatch: -1 must be 1 or more"}},
		{name: "action", yaml: "notifications:\n  endpoints:\n    - {name: a, url: http://a/, ignore: {actions: [pul]}}\n",
			want: []string{`notifications.endpoints[0].ignore.actions[0]: "pul" must be one of push, pull, mount, delete`}},
		{name: "unknown key", yaml: "notifications:\n  endpoints:\n    - name: a\n      url: http://a/\n      threshold: 5\n",
			want: []string{"notifications.endpoints[0].threshold: unknown key; allowed in notifications.endpoints[0]: name, url, headers,", "line 5"}},
		{name: "unknown key in ignore", yaml: "notifications:\n  endpoints:\n    - {name: a, url: http://a/, ignore: {media: [x]}}\n",
			want: []string{"notifications.endpoints[0].ignore.media: unknown key; allowed in notifications.endpoints[0].ignore: mediatypes, actions"}},
		{name: "not a list", yaml: "notifications:\n  endpoints: http://a/\n",
			want: []string{"notifications.endpoints: must be a list", "line 2"}},
		{name: "bad duration", yaml: "notifications:\n  endpoints:\n    - {name: a, url: http://a/, timeout: soon}\n",
			want: []string{`notifications.endpoints[0].timeout: "soon" is not a duration`}},
		{name: "bad header name", yaml: "notifications:\n  endpoints:\n    - {name: a, url: http://a/, headers: {\"X Y\": [z]}}\n",
			want: []string{`notifications.endpoints[0].headers: "X Y" is not a header name`}},
		{name: "every problem at once", yaml: "notifications:\n  endpoints:\n    - {name: a, url: http://a/, threshold: 5, timeout: soon, backoff: -1s}\n",
			want: []string{"endpoints[0].threshold: unknown key", "endpoints[0].timeout: \"soon\" is not a duration", "endpoints[0].backoff: -1s must be greater than 0"}},
		{name: "env not yaml", env: []string{"LADING_NOTIFICATIONS_ENDPOINTS=[{name: a"},
			want: []string{"notifications.endpoints: is not a YAML list", "env LADING_NOTIFICATIONS_ENDPOINTS"}},
	})
}
