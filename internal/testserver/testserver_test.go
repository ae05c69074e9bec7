package testserver

import "testing"

func TestServerErrorLine(t *testing.T) {
	for line, want := range map[string]bool{
		`time=x level=ERROR msg=request method=GET path=/v2/a/blobs/x status=500 bytes_in=0`:                           true,
		`time=x level=INFO msg=request method=GET path=/v2/a/blobs/x status=404 bytes_in=0`:                            false,
		`time=x level=INFO msg=request method=GET path=/v2/a status=400 user_agent="\ntime=x level=ERROR msg=request"`: false,
		`{"time":"x","level":"ERROR","msg":"request","path":"/v2/a","status":503}`:                                     true,
		`{"time":"x","level":"INFO","msg":"request","path":"/v2/a","status":201}`:                                      false,
	} {
		if got := serverErrorLine.MatchString(line); got != want {
			t.Errorf("%s: matched %v, want %v", line, got, want)
		}
	}
}
