package hardening

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testserver"
)

// sendShort opens a connection, sends a request declaring a body of
// declared bytes, sends only body, and hangs up without reading an answer:
// a client that dies mid-request.
func sendShort(t *testing.T, addr, method, target string, declared int, body []byte, header ...string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n", method, target, addr, declared)
	for i := 0; i+1 < len(header); i += 2 {
		req += header[i] + ": " + header[i+1] + "\r\n"
	}
	if _, err := conn.Write(append([]byte(req+"\r\n"), body...)); err != nil {
		t.Fatal(err)
	}
}

// waitOffset polls a session until it reports want bytes and is free for
// the next chunk: the server saves the session's state once it has noticed
// the connection is gone, and lets go of the session just after. An empty
// chunk is accepted only once it has.
func waitOffset(t *testing.T, c *client, loc string, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, r, err := c.sessionOffset(loc)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s at %d (%s), want %d", loc, got, r, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		r, err := c.do(http.MethodPatch, loc, []byte{})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.status == http.StatusAccepted:
			return
		case r.status != http.StatusRequestedRangeNotSatisfiable || time.Now().After(deadline):
			t.Fatalf("empty chunk to %s: %s", loc, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBodyCutShort checks over TCP that a chunk whose client disappears
// mid-body leaves the session at the bytes that arrived, resumable, and
// that a monolithic push cut short stores nothing.
func TestBodyCutShort(t *testing.T) {
	srv := start(t, testserver.Options{})
	c := newClient(srv.URL, 4)
	defer c.close()
	blob := randomBytes(3<<20 + 12345)
	d := digest.FromBytes(blob)

	loc, err := c.startSession("short/chunk")
	if err != nil {
		t.Fatal(err)
	}
	// A first good chunk, then a chunk that declares 2 MiB and stops short
	// within the server's copy buffer and past it.
	first := 1 << 20
	if loc, err = c.patch(loc, 0, blob[:first]); err != nil {
		t.Fatal(err)
	}
	sent := first + 1<<20 + 777
	sendShort(t, srv.Addr, http.MethodPatch, loc, 2<<20, blob[first:sent])
	waitOffset(t, c, loc, int64(sent))

	// A chunk cut short without Content-Range, then one with it.
	sendShort(t, srv.Addr, http.MethodPatch, loc, 1<<20, blob[sent:sent+1000])
	sent += 1000
	waitOffset(t, c, loc, int64(sent))
	cr := strconv.Itoa(sent) + "-" + strconv.Itoa(sent+4999)
	sendShort(t, srv.Addr, http.MethodPatch, loc, 5000, blob[sent:sent+10], "Content-Range", cr)
	sent += 10
	waitOffset(t, c, loc, int64(sent))

	// The client resumes where the server says and the digest verifies.
	if loc, err = c.patch(loc, int64(sent), blob[sent:]); err != nil {
		t.Fatal(err)
	}
	if err := c.commit(loc, d); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.verifyBlob("short/chunk", d); !ok || err != nil {
		t.Fatalf("blob after resumed upload: %v %v", ok, err)
	}

	// A final PUT whose last chunk is cut short commits nothing.
	other := randomBytes(300 << 10)
	od := digest.FromBytes(other)
	loc2, err := c.startSession("short/chunk")
	if err != nil {
		t.Fatal(err)
	}
	sendShort(t, srv.Addr, http.MethodPut, withQuery(loc2, "digest="+od.String()), len(other), other[:1000])
	waitOffset(t, c, loc2, 1000)
	if ok, err := c.verifyBlob("short/chunk", od); ok || err != nil {
		t.Fatalf("blob of a cut final PUT: %v %v", ok, err)
	}
	if _, err := c.expect(http.StatusCreated, http.MethodPut, withQuery(loc2, "digest="+od.String()), other[1000:]); err != nil {
		t.Fatal(err)
	}

	// A monolithic push cut short leaves no blob.
	mono := randomBytes(2 << 20)
	md := digest.FromBytes(mono)
	sendShort(t, srv.Addr, http.MethodPost, "/v2/short/mono/blobs/uploads/?digest="+md.String(), len(mono), mono[:len(mono)/2])
	time.Sleep(200 * time.Millisecond)
	if ok, err := c.verifyBlob("short/mono", md); ok || err != nil {
		t.Fatalf("blob of a cut monolithic push: %v %v", ok, err)
	}
}
