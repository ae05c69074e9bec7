package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestParseProxies(t *testing.T) {
	got, err := ParseProxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::ffff:198.51.100.1,::ffff:172.16.0.0/108,")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "198.51.100.1/32", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("%d: %v, want %s", i, got[i], want[i])
		}
	}
	if p, err := ParseProxies(""); err != nil || p != nil {
		t.Errorf("empty: %v, %v", p, err)
	}
	for _, bad := range []string{"proxy.example", "10.0.0.0/33", "10.0.0.1:80", "::ffff:0.0.0.0/80"} {
		if _, err := ParseProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Only a trusted proxy's word is taken, and only for the hops it and the
// trusted proxies behind it appended: what a client wrote itself, left of
// them, is not.
func TestForwardedClient(t *testing.T) {
	trusted, err := ParseProxies("10.0.0.0/8, 2001:db8::/32, fe80::/10")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"trusted proxy", "10.1.2.3:5000", []string{"203.0.113.9"}, "203.0.113.9:0"},
		{"two trusted hops", "10.1.2.3:5000", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9:0"},
		{"spoofed left of the real client", "10.1.2.3:5000", []string{"198.51.100.66, 203.0.113.9"}, "203.0.113.9:0"},
		{"several headers", "10.1.2.3:5000", []string{"198.51.100.66", "203.0.113.9"}, "203.0.113.9:0"},
		{"every hop trusted", "10.1.2.3:5000", []string{"10.7.7.7, 10.8.8.8"}, "10.7.7.7:0"},
		{"with a port", "10.1.2.3:5000", []string{"203.0.113.9:4711"}, "203.0.113.9:0"},
		{"IPv6 proxy and client", "[2001:db8::1]:5000", []string{"2001:db8:ffff::5, 2001:db8::2"}, "[2001:db8:ffff::5]:0"},
		{"untrusted peer", "203.0.113.50:5000", []string{"198.51.100.66"}, "203.0.113.50:5000"},
		{"no header", "10.1.2.3:5000", nil, "10.1.2.3:5000"},
		{"garbage where read", "10.1.2.3:5000", []string{"203.0.113.9, not-an-address"}, "10.1.2.3:5000"},
		{"garbage left of the client", "10.1.2.3:5000", []string{"not-an-address, 203.0.113.9"}, "203.0.113.9:0"},
		{"a zone where read", "10.1.2.3:5000", []string{"fe80::1%a]b"}, "10.1.2.3:5000"},
		{"link-local proxy", "[fe80::1%eth0]:5000", []string{"203.0.113.9"}, "203.0.113.9:0"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:5000", []string{"203.0.113.9"}, "203.0.113.9:0"},
	} {
		var seen string
		h := ForwardedClient(trusted, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr }))
		r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if seen != c.want {
			t.Errorf("%s: client %q, want %q", c.name, seen, c.want)
		}
	}
}

// A trusted proxy that ends TLS says so in X-Forwarded-Proto; anyone
// else's word on it is not taken.
func TestScheme(t *testing.T) {
	trusted, _ := ParseProxies("10.0.0.0/8")
	var got string
	h := ForwardedClient(trusted, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = Scheme(r) }))
	for _, tc := range []struct {
		peer   string
		protos []string
		want   string
	}{
		{"10.0.0.5:4000", []string{"https"}, "https"},
		{"10.0.0.5:4000", []string{"HTTPS, http"}, "https"}, // the client's side
		{"10.0.0.5:4000", []string{"https", "http"}, "https"},
		{"10.0.0.5:4000", []string{"gopher"}, "http"},
		{"10.0.0.5:4000", nil, "http"},
		{"192.0.2.1:4000", []string{"https"}, "http"}, // not a proxy of ours
	} {
		r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		r.RemoteAddr = tc.peer
		for _, p := range tc.protos {
			r.Header.Add("X-Forwarded-Proto", p)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if got != tc.want {
			t.Errorf("from %s with %q: %s, want %s", tc.peer, tc.protos, got, tc.want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	r.RemoteAddr = "10.0.0.5:4000"
	r.Header.Set("Forwarded", `for=192.0.2.1;proto="https";host=registry.example`)
	r.Header.Set("X-Forwarded-Proto", "http")
	if h.ServeHTTP(httptest.NewRecorder(), r); got != "https" {
		t.Errorf("with Forwarded: %s", got)
	}
	r = httptest.NewRequest(http.MethodGet, "https://registry.example/v2/", nil)
	if s := Scheme(r); s != "https" {
		t.Errorf("over TLS: %s", s)
	}
}
