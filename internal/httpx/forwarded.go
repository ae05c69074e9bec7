package httpx

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// ParseProxies reads a comma-separated list of addresses and CIDR ranges
// (the http.trustedproxies setting); empty gives none.
func ParseProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			if a := p.Addr(); a.Is4In6() {
				// Peers are compared unmapped.
				if p.Bits() < 96 {
					return nil, fmt.Errorf("%q spans more than IPv4-mapped addresses; give the IPv4 range", f)
				}
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR range", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ForwardedClient returns a middleware that, for a request whose peer is
// one of the trusted proxies, puts in RemoteAddr the client's address
// from X-Forwarded-For: the last address there that is not a trusted
// proxy, since each proxy appends the peer it saw and only the trusted
// ones can be believed; entries left of it are the client's to write.
// Everything that speaks of the client (the access log, the failed-login
// limit) then sees the client, not the proxy. Requests from other peers,
// and ones whose header holds a value that is no address where it would
// be read, keep their peer. A trusted proxy's word on the scheme is kept
// for Scheme.
func ForwardedClient(trusted []netip.Prefix, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap().WithZone("") // a link-local proxy's peer address carries its interface
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && isTrusted(peer.Addr()) {
			if client, ok := forwardedFor(r.Header.Values("X-Forwarded-For"), isTrusted); ok {
				r2 := new(http.Request)
				*r2 = *r
				r2.RemoteAddr = net.JoinHostPort(client.String(), "0")
				r = r2
			}
			switch proto, _ := Forwarded(r.Header); strings.ToLower(proto) {
			case "http", "https":
				r = r.WithContext(context.WithValue(r.Context(), protoKey{}, strings.ToLower(proto)))
			}
		}
		next.ServeHTTP(w, r)
	})
}

type protoKey struct{}

// Scheme is how the client reached the registry: what a trusted proxy
// said (Forwarded), as the token realm reads it (a proxy ending TLS speaks
// plain HTTP to Lading), else whether the request came over TLS.
func Scheme(r *http.Request) string {
	if proto, ok := r.Context().Value(protoKey{}).(string); ok {
		return proto
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// Forwarded returns the scheme and host a proxy says the client reached
// it by: the first (the client's side) element of a Forwarded header
// (RFC 7239), else the first values of X-Forwarded-Proto and
// X-Forwarded-Host, the ones the proxy nearest the client set.
func Forwarded(h http.Header) (proto, host string) {
	if v := h.Get("Forwarded"); v != "" {
		first, _, _ := strings.Cut(v, ",")
		for pair := range strings.SplitSeq(first, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok {
				continue
			}
			if unq, err := strconv.Unquote(val); err == nil && strings.HasPrefix(val, `"`) {
				val = unq
			}
			switch strings.ToLower(k) {
			case "proto":
				proto = val
			case "host":
				host = val
			}
		}
	}
	if proto == "" {
		proto = firstValue(h.Get("X-Forwarded-Proto"))
	}
	if host == "" {
		host = firstValue(h.Get("X-Forwarded-Host"))
	}
	return proto, host
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// forwardedFor walks X-Forwarded-For's entries from the right past the
// trusted proxies; when every entry is one, the leftmost is the client.
func forwardedFor(values []string, trusted func(netip.Addr) bool) (netip.Addr, bool) {
	if len(values) == 0 {
		return netip.Addr{}, false
	}
	entries := strings.Split(strings.Join(values, ","), ",")
	var client netip.Addr
	for i := len(entries) - 1; i >= 0; i-- {
		e := strings.TrimSpace(entries[i])
		a, err := netip.ParseAddr(e)
		if err != nil {
			ap, perr := netip.ParseAddrPort(e)
			if perr != nil {
				return netip.Addr{}, false
			}
			a = ap.Addr()
		}
		if a.Zone() != "" {
			return netip.Addr{}, false // no host:port a client could be named by
		}
		client = a.Unmap()
		if !trusted(client) {
			break
		}
	}
	return client, client.IsValid()
}
