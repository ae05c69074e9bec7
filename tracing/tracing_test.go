package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A traced request's writer still reads from a file (io.ReaderFrom), the
// way net/http reaches sendfile for a pull.
func TestHandlerKeepsReadFrom(t *testing.T) {
	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer receiver.Close()
	tr, err := Start(context.Background(), Options{Endpoint: receiver.URL, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	readsFrom := false
	h := tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readsFrom = w.(io.ReaderFrom)
	}), func(*http.Request) (string, string) { return "blob", "team/app" })
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/team/app/blobs/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !readsFrom {
		t.Error("the traced response writer hides ReadFrom: pulls would not use sendfile")
	}
}

// Not tracing, nothing is wrapped.
func TestZeroTracesNothing(t *testing.T) {
	tr, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Tracer() != nil || tr.Transport(nil) != nil {
		t.Error("a tracer or transport without an endpoint")
	}
}
