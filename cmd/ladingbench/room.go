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

// roomNeeded estimates what a run of the scenarios writes in all: every
// round of every registry keeps what it pushed.
func (b *bench) roomNeeded(scs []scenario) int64 {
	var per int64 // one registry, one round
	for _, sc := range scs {
		switch sc.name {
		case "push", "chunked", "pull": // the pull's blob: the round's last big push, or its own
			per += b.s.blobSize
		case "image":
			for _, l := range b.s.imageLayers {
				per += l
			}
		}
	}
	per += int64(b.s.smallCount)*b.s.smallSize + int64(b.s.manifestCount)*(8<<10)
	return per*int64(b.s.rounds)*int64(len(b.targets)) + 1<<30
}
