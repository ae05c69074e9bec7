package logging

import (
	"sync/atomic"
	"time"
)

// processStart anchors monotonic times kept as integers.
var processStart = time.Now()

// EveryMinute lets a repeated warning through at most once a minute, so
// that a condition lasting for hours is told without flooding the log.
// The zero value is ready, and lets the first through.
type EveryMinute struct {
	last atomic.Int64 // of the last let through, in monotonic nanoseconds
}

// Allow reports whether a warning may be logged now, and if so counts it.
func (e *EveryMinute) Allow() bool {
	last, now := e.last.Load(), int64(time.Since(processStart))
	return (last == 0 || now-last >= int64(time.Minute)) && e.last.CompareAndSwap(last, now)
}
