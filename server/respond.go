package server

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSON answers with v encoded, its length always declared.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	writeBody(w, r, status, "application/json", mustJSON(v))
}

// writeBody answers with payload of the given media type; HEAD gets the
// headers only.
func writeBody(w http.ResponseWriter, r *http.Request, status int, mediaType string, payload []byte) {
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(payload)
	}
}

// writeEmpty answers with no body and says so, which the spec asks of
// every response.
func writeEmpty(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// mustJSON encodes the server's own response types, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
