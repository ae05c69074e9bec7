package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/lading-registry/lading/registry"
)

func asciiDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// FuzzParseContentRange checks the parser against its three accepted
// shapes, then sends the header with a 3-byte chunk to a fresh session:
// only a range that names exactly those bytes at offset 0 is accepted,
// and no header ever makes a 5xx.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-2", "bytes 0-2/3", "bytes=0-2", "bytes 0-2/*", "1-3", "2-0", "-1-2", "0-+2", "0x0-2", "0-99999999999999999999", "0-9223372036854775807", " 0 - 2 ", "bytes */3", ""} {
		f.Add(s)
	}
	h := newHandler(f, Options{})
	f.Fuzz(func(t *testing.T, header string) {
		start, end, ok := parseContentRange(header)
		if ok {
			if start < 0 || end < start || end-start+1 <= 0 {
				t.Fatalf("parseContentRange(%q) = %d-%d", header, start, end)
			}
			canon := strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10)
			if s2, e2, ok2 := parseContentRange(canon); !ok2 || s2 != start || e2 != end {
				t.Fatalf("%q does not round-trip through %q", header, canon)
			}
			span := strings.TrimSpace(header)
			if rest, found := strings.CutPrefix(span, "bytes"); found {
				span = strings.TrimLeft(rest, " =")
			}
			span, _, _ = strings.Cut(span, "/")
			a, b, _ := strings.Cut(span, "-")
			if !asciiDigits(a) || !asciiDigits(b) {
				t.Fatalf("parseContentRange(%q) accepted non-digits", header)
			}
		}
		if strings.ContainsAny(header, "\r\n\x00") || !validHeaderValue(header) {
			return // net/http would refuse to send it
		}
		loc := startSession(t, h, "fuzz")
		req := httptest.NewRequest(http.MethodPatch, loc, strings.NewReader("abc"))
		req.Header.Set("Content-Range", header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkInvariants(t, request{method: http.MethodPatch, target: loc}, rec)
		want := http.StatusBadRequest
		if header == "" || ok && start == 0 && end == 2 {
			want = http.StatusAccepted
		} else if ok && end-start+1 == 3 {
			want = http.StatusRequestedRangeNotSatisfiable
		}
		if rec.Code != want {
			t.Fatalf("Content-Range %q (parsed %d-%d %v): status %d, want %d; %s", header, start, end, ok, rec.Code, want, rec.Body)
		}
	})
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzUploadSession throws arbitrary session tokens at every method of the
// upload endpoint: a 4xx with an OCI body, never a 5xx, and only the real
// session is found. The real session's Location routes back to it.
func FuzzUploadSession(f *testing.F) {
	for _, s := range []string{"", "..", "%2e%2e", "%2F..%2F..%2Fblobs", "00000000-0000-4000-8000-000000000000", "a%00b", "a%5Cb", "%FF", "x?digest=sha256:0", "%", strings.Repeat("9", 2000)} {
		f.Add(http.MethodPatch, s)
	}
	h := newHandler(f, Options{})
	loc := startSession(f, h, "fuzz/up")
	real := strings.TrimPrefix(loc, "/v2/fuzz/up/blobs/uploads/")
	f.Add(http.MethodGet, real)
	f.Fuzz(func(t *testing.T, method, token string) {
		switch method {
		case http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete:
		default:
			method = http.MethodGet
		}
		req, err := http.NewRequest(method, "http://x/v2/fuzz/up/blobs/uploads/"+token, strings.NewReader("z"))
		if err != nil || req.URL.Host != "x" {
			return
		}
		if rt, err := parseRoute(req); err == nil && rt.Reference == real && method == http.MethodDelete {
			req.Method = http.MethodGet // keep the session for the next inputs
		}
		method = req.Method
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkInvariants(t, request{method: method, target: token}, rec)
		if rec.Code < 400 {
			ref, _ := url.PathUnescape(strings.TrimPrefix(req.URL.EscapedPath(), "/v2/fuzz/up/blobs/uploads/"))
			if ref != real {
				t.Fatalf("%s token %q (reference %q) answered %d", method, token, ref, rec.Code)
			}
			if method == http.MethodPut {
				t.Fatalf("PUT on the real session succeeded without a valid digest")
			}
			rt, err := parseRoute(httptest.NewRequest(http.MethodGet, rec.Header().Get("Location"), nil))
			if err != nil || rt.Name != RouteUpload || rt.Repository != "fuzz/up" || rt.Reference != real {
				t.Fatalf("Location %q routes to %+v (%v)", rec.Header().Get("Location"), rt, err)
			}
			return
		}
		if code := errorCode(t, rec); code == registry.CodeUnknown {
			t.Fatalf("%s token %q: UNKNOWN error", method, token)
		}
	})
}
