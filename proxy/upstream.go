package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/lading-registry/lading/internal/httpx"
)

// manifestAccept is what a mirror accepts for a manifest: every type it
// stores, so the upstream answers a tag with the index a client would get
// rather than one platform's image.
var manifestAccept = strings.Join(manifestTypes, ", ")

var manifestTypes = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// upstream speaks the distribution API to the registry a mirror fills
// from. go-containerregistry's transport does the authentication: Basic,
// or the Bearer token dance of Docker Hub and most public registries, with
// a token per repository (the scope it was issued for) kept and renewed.
type upstream struct {
	base *url.URL // scheme and host of the upstream
	reg  name.Registry
	auth authn.Authenticator
	rt   http.RoundTripper
	// dockerHub: names of one component are official images there, under
	// library/ (as the Docker client pulls them).
	dockerHub bool

	mu    sync.Mutex
	repos map[string]*http.Client // by upstream repository name

	// heldUntil is when the upstream's last 429 asked to be left alone
	// until (Retry-After): requests before it are not sent. A rate limit
	// is the client's, not a repository's (Docker Hub counts pulls by
	// address), so one answer holds them all. A time.Now() reading, so the
	// wait is measured on the monotonic clock, whatever the wall clock does.
	holdMu    sync.Mutex
	heldUntil time.Time
}

// errTagListTooLarge is an upstream tag list over maxTagListBytes.
var errTagListTooLarge = fmt.Errorf("the list is larger than %d bytes", maxTagListBytes)

// held returns how long requests to the upstream are still held back.
func (u *upstream) held() time.Duration {
	u.holdMu.Lock()
	defer u.holdMu.Unlock()
	return min(time.Until(u.heldUntil), maxRetryAfter)
}

// hold holds requests back for d from now.
func (u *upstream) hold(d time.Duration) {
	u.holdMu.Lock()
	defer u.holdMu.Unlock()
	if t := time.Now().Add(d); t.After(u.heldUntil) {
		u.heldUntil = t
	}
}

// heldBack is the error of a request not sent while the upstream's
// Retry-After runs: before any, the ping and token requests included.
func (u *upstream) heldBack(op string) error {
	if wait := u.held(); wait > 0 {
		return &upstreamError{op: op, status: http.StatusTooManyRequests, retryAfter: wait, held: true,
			err: errors.New("held back: the upstream asked to wait (Retry-After)")}
	}
	return nil
}

// maxRetryAfter bounds how long an upstream's Retry-After holds requests
// back, so that a mistaken hour-long one does not.
const maxRetryAfter = 10 * time.Minute

// maxRepoClients bounds the authenticated clients kept; past it they are
// all dropped and made again as needed (each costs a ping and a token).
const maxRepoClients = 4096

func newUpstream(remoteURL, username, password string, rt http.RoundTripper) (*upstream, error) {
	base, err := url.Parse(remoteURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("proxy: remote URL %q is not an http:// or https:// URL", remoteURL)
	}
	var opts []name.Option
	if base.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(base.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("proxy: remote URL %q: %w", remoteURL, err)
	}
	var auth authn.Authenticator = authn.Anonymous
	if username != "" {
		auth = &authn.Basic{Username: username, Password: password}
	}
	if rt == nil {
		rt = NewTransport()
	}
	host := base.Hostname()
	return &upstream{
		base: &url.URL{Scheme: base.Scheme, Host: base.Host}, reg: reg, auth: auth, rt: rt,
		dockerHub: host == "registry-1.docker.io" || host == "index.docker.io" || host == "docker.io",
		repos:     map[string]*http.Client{},
	}, nil
}

// NewTransport, Options.Transport's default, bounds each step before a
// response starts; a body (a layer of gigabytes) is bounded by the
// client's request, whose end cancels it.
func NewTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone() // keeps HTTPS_PROXY and HTTP/2
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	t.ExpectContinueTimeout = time.Second
	t.IdleConnTimeout = 90 * time.Second
	t.MaxIdleConnsPerHost = 32
	return t
}

// repoName is the upstream's name for a local repository.
func (u *upstream) repoName(repo string) string {
	if u.dockerHub && !strings.Contains(repo, "/") {
		return "library/" + repo
	}
	return repo
}

// client returns the authenticated client for repo, made on first use:
// a ping of the upstream, and with Bearer a token for the repository.
func (u *upstream) client(ctx context.Context, repo string) (*http.Client, error) {
	u.mu.Lock()
	c, ok := u.repos[repo]
	u.mu.Unlock()
	if ok {
		return c, nil
	}
	r := u.reg.Repo(repo)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rt, err := transport.NewWithContext(pctx, u.reg, u.auth, u.rt, []string{r.Scope(transport.PullScope)})
	if err != nil {
		ue := &upstreamError{op: "connect", err: err}
		if te := (*transport.Error)(nil); errors.As(err, &te) {
			ue.status = te.StatusCode // the token server's refusal
		}
		return nil, ue
	}
	c = &http.Client{Transport: rt}
	u.mu.Lock()
	if len(u.repos) >= maxRepoClients {
		clear(u.repos)
	}
	u.repos[repo] = c
	u.mu.Unlock()
	return c, nil
}

// do sends a request for path below the repository's /v2/<name>/ and
// returns the response when its status is 200 (the caller closes its
// body), else an *upstreamError.
func (u *upstream) do(ctx context.Context, method, repo, path, accept string) (*http.Response, error) {
	if err := u.heldBack(method); err != nil {
		return nil, err
	}
	name := u.repoName(repo)
	c, err := u.client(ctx, name)
	if err != nil {
		return nil, err
	}
	target := u.base.JoinPath("v2", name, path)
	return u.send(ctx, c, method, target.String(), accept)
}

func (u *upstream) send(ctx context.Context, c *http.Client, method, target, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, &upstreamError{op: method, err: err}
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	ue := &upstreamError{op: method, status: resp.StatusCode, err: transport.CheckError(resp, http.StatusOK)}
	if resp.StatusCode == http.StatusTooManyRequests {
		ue.retryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		u.hold(ue.retryAfter)
	}
	return nil, ue
}

// retryAfter reads a Retry-After as a wait of at least a second and at
// most maxRetryAfter; a missing or unreadable one is a second.
func retryAfter(v string, now time.Time) time.Duration {
	d, _ := httpx.RetryAfter(v, now, maxRetryAfter)
	return max(d, time.Second)
}

// upstreamError is a request to the upstream that failed: status is its
// answer's, 0 when none came.
type upstreamError struct {
	op     string
	status int
	err    error
	// retryAfter is how long a 429 asked to wait; held, that the request
	// was not sent, an earlier 429's wait still running.
	retryAfter time.Duration
	held       bool
}

func (e *upstreamError) Error() string {
	if e.status == 0 {
		return "upstream " + e.op + ": " + e.err.Error()
	}
	return fmt.Sprintf("upstream %s: %d: %v", e.op, e.status, e.err)
}

func (e *upstreamError) Unwrap() error { return e.err }

// outcome names how a request to the upstream ended, for metrics and for
// what the mirror does next.
type outcome string

const (
	outcomeOK          outcome = "ok"
	outcomeNotFound    outcome = "not_found"
	outcomeThrottled   outcome = "throttled"   // 429
	outcomeHeld        outcome = "held"        // not sent: a 429's Retry-After runs
	outcomeUnavailable outcome = "unavailable" // no answer, or 5xx
	outcomeRefused     outcome = "refused"     // another 4xx: credentials, policy
)

func outcomeOf(err error) outcome {
	var ue *upstreamError
	switch {
	case err == nil:
		return outcomeOK
	case !errors.As(err, &ue) || ue.status == 0 || ue.status >= 500:
		return outcomeUnavailable
	case ue.status == http.StatusNotFound:
		return outcomeNotFound
	case ue.held:
		return outcomeHeld
	case ue.status == http.StatusTooManyRequests:
		return outcomeThrottled
	}
	return outcomeRefused
}

// maxTagPages bounds the pages of a tag list followed upstream, and
// maxTagListBytes what they hold together: a list is read whole (the
// mirror pages it for its clients), and an upstream sending more must not
// cost a request gigabytes.
const (
	maxTagPages     = 100
	maxTagListBytes = 16 << 20
)

// tags lists every tag of repo upstream, following the pages it links.
func (u *upstream) tags(ctx context.Context, repo string) ([]string, error) {
	if err := u.heldBack("tags"); err != nil {
		return nil, err
	}
	name := u.repoName(repo)
	c, err := u.client(ctx, name)
	if err != nil {
		return nil, err
	}
	next := u.base.JoinPath("v2", name, "tags", "list")
	next.RawQuery = "n=1000"
	var all []string
	budget := &io.LimitedReader{N: maxTagListBytes}
	for range maxTagPages {
		resp, err := u.send(ctx, c, http.MethodGet, next.String(), "")
		if err != nil {
			return nil, err
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		budget.R = resp.Body
		err = json.NewDecoder(budget).Decode(&page)
		resp.Body.Close()
		if err != nil && budget.N <= 0 {
			err = errTagListTooLarge
		}
		if err != nil {
			return nil, &upstreamError{op: "tags", err: err}
		}
		all = append(all, page.Tags...)
		link := nextLink(resp.Header.Get("Link"))
		if link == "" {
			return all, nil
		}
		if next, err = next.Parse(link); err != nil || next.Host != u.base.Host {
			return nil, &upstreamError{op: "tags", err: fmt.Errorf("a next page at %q", link)}
		}
	}
	return all, nil
}

// nextLink returns the target of a Link header's rel="next" (RFC 8288).
func nextLink(header string) string {
	for _, l := range strings.Split(header, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(l), ";")
		if ok && strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			return strings.Trim(strings.TrimSpace(target), "<>")
		}
	}
	return ""
}
