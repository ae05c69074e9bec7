package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// machine notes where the numbers were taken; the load average says how
// much else was running.
type machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpuModel"`
	Kernel     string `json:"kernel"`
	Disk       string `json:"disk,omitempty"`
	GoVersion  string `json:"goVersion"`
	LoadBefore string `json:"loadBefore"`
	LoadAfter  string `json:"loadAfter,omitempty"`
}

func describeMachine(dataDir string) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if dataDir != "" {
		m.Disk = describeDisk(dataDir)
	}
	return m
}

func (m machine) summary() string {
	s := fmt.Sprintf("%d CPUs (%s), Linux %s, %s", m.CPUs, m.CPUModel, m.Kernel, m.GoVersion)
	if m.Disk != "" {
		s += ", data on " + m.Disk
	}
	s += ", load average " + m.LoadBefore
	if m.LoadAfter != "" {
		s += " before, " + m.LoadAfter + " after"
	}
	return s
}

// loadAverage is the 1, 5 and 15 minute load of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// describeDisk names the mount holding dir: device, file system, whether
// the block device is rotational and, for ext4, whether it has a journal.
func describeDisk(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return ""
	}
	var dev, mnt, fstype string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if (abs == f[1] || strings.HasPrefix(abs, strings.TrimSuffix(f[1], "/")+"/")) && len(f[1]) >= len(mnt) {
			dev, mnt, fstype = f[0], f[1], f[2]
		}
	}
	if dev == "" {
		return ""
	}
	kind := ""
	if rot, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/queue/rotational"); err == nil {
		kind = map[string]string{"0": ", non-rotational", "1": ", rotational"}[strings.TrimSpace(string(rot))]
	}
	if fstype == "ext4" {
		// Without a journal, syncs and inode allocation cost differently.
		if task, err := os.ReadFile("/sys/fs/ext4/" + filepath.Base(dev) + "/journal_task"); err == nil {
			if strings.TrimSpace(string(task)) == "<none>" {
				kind += ", no journal"
			} else {
				kind += ", journaled"
			}
		}
	}
	return fmt.Sprintf("%s (%s%s)", dev, fstype, kind)
}
