package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procWatch follows a server process during a timed section: the peak of
// its resident set and the CPU time it spends.
type procWatch struct {
	pid      int
	hwmReset bool
	cpu0     float64
	stop     chan struct{}
	wg       sync.WaitGroup
	peak     int64 // bytes, sampled
}

type procUsage struct {
	PeakRSS int64   // bytes
	CPU     float64 // seconds, user + system
}

// watchProc starts sampling pid. The kernel's high-water mark (VmHWM) is
// reset through clear_refs so it covers only this section; where that is
// not allowed, the samples (every 10 ms) are what there is.
func watchProc(pid int) *procWatch {
	w := &procWatch{pid: pid, stop: make(chan struct{})}
	w.hwmReset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	w.cpu0, _ = procCPU(pid)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := procMem(pid); err == nil {
				w.peak = max(w.peak, rss)
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *procWatch) done() procUsage {
	close(w.stop)
	w.wg.Wait()
	u := procUsage{PeakRSS: w.peak}
	if rss, hwm, err := procMem(w.pid); err == nil {
		u.PeakRSS = max(u.PeakRSS, rss)
		if w.hwmReset {
			u.PeakRSS = max(u.PeakRSS, hwm)
		}
	}
	if cpu, err := procCPU(w.pid); err == nil {
		u.CPU = cpu - w.cpu0
	}
	return u
}

// procMem reads VmRSS and VmHWM from /proc/PID/status, in bytes.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val) // "12345 kB"
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// procCPU reads utime+stime of /proc/PID/stat, in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(3) ... utime(14) stime(15), so indexes 11 and 12 here.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return (ut + st) / clockTicks, nil
}
