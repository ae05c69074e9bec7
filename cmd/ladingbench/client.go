package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// client speaks the OCI Distribution API to one registry with a plain
// net/http client, so every registry sees the same requests.
type client struct {
	base *url.URL
	hc   *http.Client
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}
}

func newClient(base *url.URL, tr http.RoundTripper) *client {
	return &client{base: base, hc: &http.Client{Transport: tr, Timeout: 30 * time.Minute}}
}

// statusError is a response the scenario did not expect.
type statusError struct {
	method, url string
	status      int
	body        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.url, e.status, e.body)
}

func (c *client) url(path string) *url.URL { return c.base.ResolveReference(&url.URL{Path: path}) }

// do sends req and returns the response if its status is want; the body
// is the caller's to drain and close.
func (c *client) do(req *http.Request, want int) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, &statusError{req.Method, req.URL.String(), resp.StatusCode, string(b)}
	}
	return resp, nil
}

// roundTrip sends a request whose response body does not matter.
func (c *client) roundTrip(req *http.Request, want int) (*http.Response, error) {
	resp, err := c.do(req, want)
	if err != nil {
		return nil, err
	}
	drain(resp.Body)
	return resp, nil
}

var discardBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// drain reads a body to its end with a large buffer (io.Discard's 8 KiB
// reads would make the client, not the server, the bottleneck of a pull)
// and closes it so the connection is reused.
func drain(body io.ReadCloser) (int64, error) {
	bp := discardBufs.Get().(*[]byte)
	defer discardBufs.Put(bp)
	var n int64
	var err error
	for {
		m, rerr := body.Read(*bp)
		n += int64(m)
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	body.Close()
	return n, err
}

func (c *client) location(resp *http.Response) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%s %s: no Location", resp.Request.Method, resp.Request.URL)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, err
	}
	return c.base.ResolveReference(u), nil
}

func newRequest(ctx context.Context, method string, u *url.URL, body io.Reader, size int64) *http.Request {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		panic(err) // the URLs are made here, from a parsed base
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	return req
}

// startUpload opens an upload session and returns its location.
func (c *client) startUpload(ctx context.Context, repo string) (*url.URL, error) {
	resp, err := c.roundTrip(newRequest(ctx, http.MethodPost, c.url("/v2/"+repo+"/blobs/uploads/"), nil, 0), http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	return c.location(resp)
}

func withDigest(u *url.URL, d digest.Digest) *url.URL {
	u2 := *u
	q := u2.Query()
	q.Set("digest", d.String())
	u2.RawQuery = q.Encode()
	return &u2
}

// pushMonolithic uploads a blob as POST then one PUT carrying the body,
// the spec's monolithic upload that every registry serves.
func (c *client) pushMonolithic(ctx context.Context, repo string, d digest.Digest, body io.Reader, size int64) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	_, err = c.roundTrip(newRequest(ctx, http.MethodPut, withDigest(loc, d), body, size), http.StatusCreated)
	return err
}

// pushSingle uploads a blob in one POST ?digest= request.
func (c *client) pushSingle(ctx context.Context, repo string, d digest.Digest, body io.Reader, size int64) error {
	u := withDigest(c.url("/v2/"+repo+"/blobs/uploads/"), d)
	_, err := c.roundTrip(newRequest(ctx, http.MethodPost, u, body, size), http.StatusCreated)
	return err
}

// pushChunked uploads a blob as PATCHes of chunk bytes with Content-Range,
// then a PUT without body.
func (c *client) pushChunked(ctx context.Context, repo string, ct content, d digest.Digest, chunk int64) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	for off := int64(0); off < ct.size; off += chunk {
		n := min(chunk, ct.size-off)
		req := newRequest(ctx, http.MethodPatch, loc, ct.section(off, n), n)
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
		resp, err := c.roundTrip(req, http.StatusAccepted)
		if err != nil {
			return err
		}
		if loc, err = c.location(resp); err != nil {
			return err
		}
	}
	_, err = c.roundTrip(newRequest(ctx, http.MethodPut, withDigest(loc, d), nil, 0), http.StatusCreated)
	return err
}

// getBlob reads a blob, or the range rng of it ("" for all), and returns
// how many bytes came.
func (c *client) getBlob(ctx context.Context, repo string, d digest.Digest, rng string) (int64, error) {
	req := newRequest(ctx, http.MethodGet, c.url("/v2/"+repo+"/blobs/"+d.String()), nil, 0)
	want := http.StatusOK
	if rng != "" {
		req.Header.Set("Range", rng)
		want = http.StatusPartialContent
	}
	resp, err := c.do(req, want)
	if err != nil {
		return 0, err
	}
	return drain(resp.Body)
}

func (c *client) headBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	resp, err := c.roundTrip(newRequest(ctx, http.MethodHead, c.url("/v2/"+repo+"/blobs/"+d.String()), nil, 0), http.StatusOK)
	if err != nil {
		return 0, err
	}
	return resp.ContentLength, nil
}

func (c *client) putManifest(ctx context.Context, repo, ref, mediaType string, payload []byte) error {
	req := newRequest(ctx, http.MethodPut, c.url("/v2/"+repo+"/manifests/"+ref), bytes.NewReader(payload), int64(len(payload)))
	req.Header.Set("Content-Type", mediaType)
	_, err := c.roundTrip(req, http.StatusCreated)
	return err
}

func (c *client) getManifest(ctx context.Context, repo, ref, mediaType string) (int64, error) {
	req := newRequest(ctx, http.MethodGet, c.url("/v2/"+repo+"/manifests/"+ref), nil, 0)
	req.Header.Set("Accept", mediaType)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return 0, err
	}
	return drain(resp.Body)
}

// tags lists every tag of repo, following Link pagination.
func (c *client) tags(ctx context.Context, repo string) (int, error) {
	u := c.url("/v2/" + repo + "/tags/list")
	count := 0
	for {
		resp, err := c.do(newRequest(ctx, http.MethodGet, u, nil, 0), http.StatusOK)
		if err != nil {
			return 0, err
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		drain(resp.Body)
		if err != nil {
			return 0, err
		}
		count += len(page.Tags)
		next := nextLink(resp.Header.Get("Link"))
		if next == "" {
			return count, nil
		}
		nu, err := url.Parse(next)
		if err != nil {
			return 0, err
		}
		u = c.base.ResolveReference(nu)
	}
}

// nextLink extracts the target of a `<url>; rel="next"` Link header.
func nextLink(h string) string {
	if len(h) < 2 || h[0] != '<' {
		return ""
	}
	end := bytes.IndexByte([]byte(h), '>')
	if end < 0 {
		return ""
	}
	return h[1:end]
}

func rangeHeader(off, n int64) string {
	return "bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)
}
