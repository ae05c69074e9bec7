package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Bytes is a size, written as a whole number of bytes with an optional
// binary unit: 4MiB, 512KiB, 5GiB, 1048576.
type Bytes int64

var byteUnits = []struct {
	suffix string
	size   int64
}{
	{"TiB", 1 << 40},
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"B", 1},
}

func parseBytes(text string) (Bytes, error) {
	s := strings.TrimSpace(text)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n < 0 || n > (1<<63-1)/u.size {
				break
			}
			return Bytes(n * u.size), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return Bytes(n), nil
	}
	return 0, fmt.Errorf("%q is not a size (write e.g. 4MiB, 512KiB, 1GiB or a number of bytes)", text)
}

// String writes b in the largest unit that divides it exactly.
func (b Bytes) String() string {
	for _, u := range byteUnits[:len(byteUnits)-1] {
		if b != 0 && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalYAML writes b as String does, so that a list holding sizes
// (quotas) prints as it is written: limit: 500GiB.
func (b Bytes) MarshalYAML() (any, error) {
	return b.String(), nil
}
