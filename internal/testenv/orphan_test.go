package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServerDiesWithTestBinary runs a child test binary that starts a server
// and is then killed outright, so no cleanup runs: the server must die too.
func TestServerDiesWithTestBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("relies on Pdeathsig")
	}
	if os.Getenv("TESTENV_ORPHAN_CHILD") == "1" {
		addr, _, err := StartRedis()
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("started", addr)
		select {}
	}
	if _, err := findBinary("redis-server"); err != nil {
		FailOrSkip(t, fmt.Errorf("%w: %v", ErrNotInstalled, err))
	}
	child := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTestBinary$")
	// The child dies before its cleanup: its Redis folder goes with the test's.
	child.Env = append(os.Environ(), "TESTENV_ORPHAN_CHILD=1", "TMPDIR="+t.TempDir())
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "started ")
	if !ok {
		_ = child.Process.Kill()
		t.Fatalf("child said %q", line)
	}
	pid, err := redisPID(addr)
	if err != nil {
		_ = child.Process.Kill()
		t.Fatal(err)
	}
	_ = child.Process.Kill()
	_ = child.Wait()

	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("redis-server %d outlived the test binary that started it", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs; a zombie (killed, not yet reaped by
// whoever adopted it) does not.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
