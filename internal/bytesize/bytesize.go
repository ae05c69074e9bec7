// Package bytesize writes sizes for people, as lading du prints them, so
// that a quota's refusal and du's report read alike.
package bytesize

import "fmt"

// Format writes n bytes in the largest binary unit it reaches, to a
// tenth: 512 B, 1.5 KiB, 20.0 GiB.
func Format(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
