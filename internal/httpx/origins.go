package httpx

import "strings"

// ParseOrigins reads http.corsorigins (server.CORS): origins separated by commas, each
// "*" or scheme://host[:port].
func ParseOrigins(spec string) ([]string, error) {
	var out []string
	for o := range strings.SplitSeq(spec, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" && !validOrigin(o) {
			return nil, &originError{o}
		}
		out = append(out, strings.TrimSuffix(o, "/"))
	}
	return out, nil
}

type originError struct{ origin string }

func (e *originError) Error() string {
	return "origin " + e.origin + " is not * or scheme://host[:port]"
}

func validOrigin(o string) bool {
	scheme, host, ok := strings.Cut(strings.TrimSuffix(o, "/"), "://")
	return ok && (scheme == "http" || scheme == "https") && host != "" && !strings.ContainsAny(host, "/?#@ ")
}
