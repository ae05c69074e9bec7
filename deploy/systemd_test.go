package deploy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

const (
	unitFile     = "systemd/lading.service"
	unitConfig   = "systemd/lading.yaml"
	unitSysusers = "systemd/lading.sysusers"
)

// unit is a systemd unit file: each section's keys, each key's values in
// order (a key may be given more than once).
type unit map[string]map[string][]string

func readUnit(t *testing.T, file string) unit {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	var section string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: %q is no key=value of a section, on one line", file, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// get is a key's value, the last one given, as systemd takes a scalar.
func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// execStart is the unit's command line, with the binary and the
// configuration it names.
func execStart(t *testing.T, u unit) (argv []string, configPath string) {
	t.Helper()
	if n := len(u["Service"]["ExecStart"]); n != 1 {
		t.Fatalf("%d ExecStart lines, want one", n)
	}
	line := u.get("Service", "ExecStart")
	if strings.ContainsAny(line, `"'\$%;`) {
		t.Fatalf("ExecStart=%s: quoting, variables or specifiers this test does not read", line)
	}
	argv = strings.Fields(line)
	if len(argv) != 4 || !filepath.IsAbs(argv[0]) || filepath.Base(argv[0]) != "lading" || argv[1] != "serve" || argv[2] != "--config" {
		t.Fatalf("ExecStart=%s, want /path/to/lading serve --config FILE", line)
	}
	return argv, argv[3]
}

func TestSystemdUnit(t *testing.T) {
	u := readUnit(t, unitFile)
	_, configPath := execStart(t, u)
	if filepath.Base(configPath) != filepath.Base(unitConfig) {
		t.Errorf("ExecStart reads %s, the example beside the unit is %s", configPath, unitConfig)
	}
	cfg, err := config.Load(unitConfig, nil, nil)
	if err != nil {
		t.Fatalf("%s:\n%v", unitConfig, err)
	}

	// The one place it may write is its state folder, and that is the root.
	state := u.get("Service", "StateDirectory")
	if state == "" || cfg.Storage.Driver != "filesystem" || cfg.Storage.Filesystem.Root != "/var/lib/"+state {
		t.Errorf("StateDirectory=%s, storage.filesystem.root %q: the root must be the state folder", state, cfg.Storage.Filesystem.Root)
	}
	if u.get("Service", "ProtectSystem") != "strict" || u.get("Service", "NoNewPrivileges") != "yes" || u.get("Service", "PrivateTmp") != "yes" {
		t.Error("want ProtectSystem=strict, NoNewPrivileges=yes and a private /tmp")
	}
	if rw := u.get("Service", "ReadWritePaths"); rw != "" {
		t.Errorf("ReadWritePaths=%s: the state folder is the one place to write", rw)
	}
	if u.get("Service", "ProcSubset") == "pid" {
		t.Error("ProcSubset=pid hides /proc/meminfo and /proc/fs/jbd2, which lading reads")
	}
	soft, _, _ := strings.Cut(u.get("Service", "LimitNOFILE"), ":")
	if n, err := strconv.Atoi(soft); err != nil || n < 4096 {
		t.Errorf("LimitNOFILE=%s: lading wants 4096 at least", u.get("Service", "LimitNOFILE"))
	}

	budget := cfg.HTTP.ShutdownDelay + cfg.HTTP.DrainTimeout + 15*time.Second
	stop, err := timespan(u.get("Service", "TimeoutStopSec"))
	if err != nil || stop <= budget {
		t.Errorf("TimeoutStopSec=%s (%v) is not above the stop's %v", u.get("Service", "TimeoutStopSec"), err, budget)
	}

	// The user is the one lading.sysusers makes, at home in the root.
	user := u.get("Service", "User")
	sysusers, err := os.ReadFile(unitSysusers)
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^u ` + regexp.QuoteMeta(user) + ` - "[^"]*" ` + regexp.QuoteMeta(cfg.Storage.Filesystem.Root) + `$`)
	if user == "" || u.get("Service", "DynamicUser") == "yes" || !want.Match(sysusers) {
		t.Errorf("User=%s: %s does not make it, at home in %s", user, unitSysusers, cfg.Storage.Filesystem.Root)
	}
}

// TestSystemdAnalyzeVerify has systemd check the unit as it would load it,
// the binary it names being a real lading.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := testenv.Tool(t, "systemd-analyze", "apt-get install systemd")
	argv, _ := execStart(t, readUnit(t, unitFile))
	lading := testserver.Binary(t)
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	// systemd refuses a unit whose ExecStart names no executable.
	copied := filepath.Join(t.TempDir(), filepath.Base(unitFile))
	if err := os.WriteFile(copied, []byte(strings.Replace(string(text), "ExecStart="+argv[0]+" ", "ExecStart="+lading+" ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", copied).CombinedOutput()
	// Keys it does not know, or values it cannot parse, are only warned
	// of: any word from it is a failure.
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	sysusers := testenv.Tool(t, "systemd-sysusers", "apt-get install systemd")
	abs, _ := filepath.Abs(unitSysusers)
	out, err = exec.Command(sysusers, "--dry-run", "--root="+t.TempDir(), abs).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user 'lading'") || strings.Contains(string(out), abs) {
		t.Fatalf("systemd-sysusers --dry-run %s: %v\n%s", unitSysusers, err, out)
	}
}

// TestSystemdExecStartServes runs the unit's command line, on the example
// configuration, and stops it as systemd does. The addresses and the root
// come from the environment, which outranks the file, to keep to loopback
// ports the kernel picks and a temporary folder.
func TestSystemdExecStartServes(t *testing.T) {
	argv, _ := execStart(t, readUnit(t, unitFile))
	lading := testserver.Binary(t)
	root := t.TempDir()
	// The two listeners' addresses must differ: the debug one's port is
	// the kernel's pick of a moment ago.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := l.Addr().String()
	l.Close()
	cmd := exec.Command(lading, append(argv[1:3], unitConfig)...)
	cmd.Env = testserver.NoScheduledGC(append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "LADING_")
	}), "LADING_HTTP_ADDR=127.0.0.1:0", "LADING_HTTP_DEBUGADDR="+debugAddr, "LADING_STORAGE_FILESYSTEM_ROOT="+root))
	logs := &testserver.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	testenv.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("lading's output:\n%s", logs.String())
		}
	})

	serving := regexp.MustCompile(`msg="lading serving" addr=(\S+)`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := serving.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		select {
		case err := <-exited:
			t.Fatalf("lading exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("lading did not start serving")
		}
	}
	for _, url := range []string{"http://" + addr + "/v2/", "http://" + debugAddr + "/readyz"} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", url, resp.Status)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) == 0 {
		t.Fatalf("nothing written under the root %s", root)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s after SIGTERM with no request in flight")
	}
}

// timespan reads a systemd time span: "150", "150s", "2min 30s".
func timespan(s string) (time.Duration, error) {
	units := map[string]time.Duration{
		"": time.Second, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"ms": time.Millisecond, "msec": time.Millisecond,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	}
	parts := regexp.MustCompile(`^\s*(\d+)\s*([a-z]*)\s*`)
	var total time.Duration
	if strings.TrimSpace(s) == "" {
		return 0, fmt.Errorf("no time span")
	}
	for rest := s; strings.TrimSpace(rest) != ""; {
		m := parts.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("time span %q", s)
		}
		n, _ := strconv.Atoi(m[1])
		unit, ok := units[m[2]]
		if !ok {
			return 0, fmt.Errorf("time span %q: unit %q", s, m[2])
		}
		total += time.Duration(n) * unit
		rest = rest[len(m[0]):]
	}
	return total, nil
}
