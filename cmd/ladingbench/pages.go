package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

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

// bigWrites is how many bytes of blobs a run of scenario sc pushes; 0 for
// scenarios that push little.
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
