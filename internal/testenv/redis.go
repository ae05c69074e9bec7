package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

const redisInstall = "apt-get install redis-server"

// StartRedis starts redis-server without persistence and returns its
// address. The returned function stops it.
func StartRedis() (string, func(), error) {
	path, err := findBinary("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v (install: %s)", ErrNotInstalled, err, redisInstall)
	}
	dir, err := os.MkdirTemp("", "lading-redis-")
	if err != nil {
		return "", nil, err
	}
	var p *process
	p, err = start(server{
		name: "redis-server",
		path: path,
		args: func(port int) []string {
			return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
		},
		env:   cleanEnv(),
		dir:   dir,
		ready: redisReady,
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop := func() {
		p.stop()
		os.RemoveAll(dir)
	}
	return p.addr, stop, nil
}

// redisReady checks that the Redis server answering at addr is the process
// pid: another Redis may have taken the port first.
func redisReady(addr string, pid int) error {
	got, err := redisPID(addr)
	if err != nil {
		return err
	}
	if got != pid {
		return fmt.Errorf("the Redis at %s is process %d, not %d", addr, got, pid)
	}
	return nil
}

// redisPID asks the Redis server at addr for its process id.
func redisPID(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	header, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(header, "$")))
	if err != nil || !strings.HasPrefix(header, "$") {
		return 0, fmt.Errorf("INFO answered %q", header)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("INFO from %s has no process_id", addr)
}
