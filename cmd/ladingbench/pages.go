package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// settlePages writes size bytes to a scratch file in dir and removes it,
// so that a run that writes next writes into pages just freed, whatever
// the runs before it left. On a virtual machine whose host backs guest
// memory only when it is first touched, and takes freed memory back after a
// while, writing into memory never touched runs several times slower (about
// 400 MB/s against 2 GB/s on the machine of the README); without this, the
// registry that a round's order put where the recycled memory ran out paid
// for it, and the order decided the round's ratio. A server that has run a
// while writes into a page cache it recycles, which is what this gives
// every run alike. The pages are never written out: the file goes while
// they are still dirty.
func settlePages(dir string, size int64) error {
	f, err := os.CreateTemp(dir, "ladingbench-settle-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	buf := make([]byte, 16<<20)
	for done := int64(0); done < size; {
		n, err := f.Write(buf[:min(int64(len(buf)), size-done)])
		if err != nil {
			f.Close()
			return err
		}
		done += int64(n)
	}
	return f.Close()
}

// checkRoom fails when dir's file system has less than need bytes free: a
// run that fills the disk fails midway, after its first registries wrote
// their rounds on a disk emptier than the last ones met.
func checkRoom(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("%s has %s free; this run writes about %s: free some space or run fewer rounds or a smaller --blob-size", dir, sizeString(free), sizeString(need))
	}
	return nil
}

// bigWrites is how many bytes a run of scenario sc writes that settlePages
// should make room for first: the blobs of the pushes; 0 for scenarios whose
// timed part writes little.
func (b *bench) bigWrites(sc string) int64 {
	switch sc {
	case "push", "chunked":
		return b.s.blobSize
	case "image":
		var n int64
		for _, l := range b.s.imageLayers {
			n += l
		}
		return n
	}
	return 0
}

// roomNeeded estimates what a run of the scenarios writes in all: every
// round of every registry keeps what it pushed.
func (b *bench) roomNeeded(scs []scenario) int64 {
	ran := map[string]bool{}
	for _, sc := range scs {
		ran[sc.name] = true
	}
	var per int64 // one registry, one round
	for _, sc := range scs {
		per += b.bigWrites(sc.name)
	}
	if ran["pull"] {
		// Its blob is the last big push of the round before, or its own.
		per += b.s.blobSize
	}
	per += int64(b.s.smallCount)*b.s.smallSize + int64(b.s.manifestCount)*(8<<10)
	return per*int64(b.s.rounds)*int64(len(b.targets)) + 1<<30
}
