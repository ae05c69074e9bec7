package filesystem

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// claimFile names the lock a serving process holds on its root.
const claimFile = "#serving"

// ErrClaimed is returned by Claim while another process holds the root.
var ErrClaimed = errors.New("another process serves this root")

// ErrUnclaimable is returned by Claim on a file system without locks (some
// network file systems): the root cannot be claimed.
var ErrUnclaimable = errors.New("the file system takes no locks")

// Claim marks this process as the one serving the root, until release (or
// its exit, which the kernel's lock ends with it: a killed server leaves
// nothing to clean). A server that keeps state between its own writes
// (tags resolved, links known, upload locks) is only right while no other
// server writes the root; tools beside it (lading gc, fsck) do not claim.
// The error names the holder's process id when it can.
//
// The lock is taken on the root folder itself as well as on the file: a
// file can be deleted under its holder (a cleanup, an operator), after
// which a new one would lock anew, while the folder stays as long as the
// store does. The file keeps the holder's id, and the lock of servers
// that took only the file's, and of file systems that lock no folder (NFS
// turns flock into a write lock, which a folder opened for reading cannot
// take).
func (d *Driver) Claim() (release func() error, err error) {
	dir, err := os.Open(d.root)
	if err != nil {
		return nil, err
	}
	releaseFile, err := d.claimFile(dir)
	if err != nil {
		dir.Close()
		return nil, err
	}
	return func() error {
		err := releaseFile()
		dir.Close() // ends the folder's lock
		return err
	}, nil
}

// claimFile locks the root folder open as dir, then the claim file.
func (d *Driver) claimFile(dir *os.File) (release func() error, err error) {
	path := filepath.Join(d.root, claimFile)
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		holder, _ := os.ReadFile(path)
		return nil, lockErr(d.root, err, holder)
	}
	writable := true
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
	if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) {
		// A read-only root, or a lock file another user made: a lock
		// needs no write, only the process id is not recorded.
		writable = false
		f, err = os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s cannot be made", ErrUnclaimable, path)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, lockErr(path, err, holder)
	}
	if !writable {
		return f.Close, nil
	}
	// The holder's id, for the message of the next to try; not synced, as
	// it only informs, and cleared at release so it never names the dead.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() error {
		f.Truncate(0)
		return f.Close()
	}, nil
}

// lockErr tells why locking path failed; holder is the claim file's content.
func lockErr(path string, err error, holder []byte) error {
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		if pid := strings.TrimSpace(string(holder)); pid != "" {
			return fmt.Errorf("%w (process %s)", ErrClaimed, pid)
		}
		return ErrClaimed
	case errors.Is(err, unix.ENOLCK), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTSUP):
		return fmt.Errorf("%w: %v", ErrUnclaimable, err)
	}
	return fmt.Errorf("filesystem: locking %s: %w", path, err)
}
