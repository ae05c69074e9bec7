//go:build !linux

package testenv

import "syscall"

// dieWithParent has no portable equivalent of Linux's Pdeathsig; elsewhere
// the servers rely on the test's cleanup to stop them.
func dieWithParent() *syscall.SysProcAttr { return nil }
