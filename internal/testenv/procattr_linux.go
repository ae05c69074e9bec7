package testenv

import "syscall"

// dieWithParent makes the kernel kill the server when the test binary dies,
// even by SIGKILL or a panic that skips every cleanup.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
