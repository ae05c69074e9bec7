package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lading.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func parseFlags(t *testing.T, args ...string) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

// badConfig is a configuration that must not load, and what its error
// must say.
type badConfig struct {
	name string
	yaml string
	env  []string
	want []string
}

// refused runs loadFails on each case, as a subtest.
func refused(t *testing.T, cases []badConfig) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { loadFails(t, tc.yaml, tc.env, nil, tc.want) })
	}
}

// loadFails loads yaml (as a file, unless empty), env and flags, and fails
// t unless the error holds every one of want.
func loadFails(t *testing.T, yaml string, env []string, flags *flag.FlagSet, want []string) {
	t.Helper()
	path := ""
	if yaml != "" {
		path = writeFile(t, yaml)
	}
	c, err := Load(path, env, flags)
	if err == nil {
		t.Fatalf("loaded without error: %s", c)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestNothingSetGivesDefaults(t *testing.T) {
	c, err := Load("", nil, parseFlags(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":5000" || c.Storage.Driver != "filesystem" || c.Storage.Filesystem.Root != "./lading-data" || !c.Deletes.Enabled {
		t.Fatalf("defaults not applied: %s", c)
	}
}

// TestPrecedence sets each key in every layer and removes layers from the
// top, checking that the highest layer present wins.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
http:
  addr: "127.0.0.1:1001"
  idletimeout: 1m
log:
  level: debug
storage:
  filesystem:
    root: /from/file
readonly: false
`)
	env := []string{
		"LADING_HTTP_ADDR=127.0.0.1:1002",
		"LADING_HTTP_IDLETIMEOUT=2m",
		"LADING_LOG_LEVEL=warn",
		"LADING_STORAGE_FILESYSTEM_ROOT=/from/env",
		"LADING_READONLY=true",
		"PATH=/usr/bin", // not ours: ignored
	}
	flags := []string{"--addr", "127.0.0.1:1003", "--set", "http.idletimeout=3m", "--log-level", "error", "--root", "/from/flag", "--read-only=false"}

	type want struct {
		addr, level, root string
		idle              time.Duration
		readOnly          bool
	}
	for _, tc := range []struct {
		name  string
		file  string
		env   []string
		flags []string
		want  want
	}{
		{"defaults", "", nil, nil, want{":5000", "info", "./lading-data", 2 * time.Minute, false}},
		{"file over defaults", file, nil, nil, want{"127.0.0.1:1001", "debug", "/from/file", time.Minute, false}},
		{"env over file", file, env, nil, want{"127.0.0.1:1002", "warn", "/from/env", 2 * time.Minute, true}},
		{"env over defaults", "", env, nil, want{"127.0.0.1:1002", "warn", "/from/env", 2 * time.Minute, true}},
		{"flags over env", file, env, flags, want{"127.0.0.1:1003", "error", "/from/flag", 3 * time.Minute, false}},
		{"unset flags keep env", file, env, []string{"--log-format", "json"}, want{"127.0.0.1:1002", "warn", "/from/env", 2 * time.Minute, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.file, tc.env, parseFlags(t, tc.flags...))
			if err != nil {
				t.Fatal(err)
			}
			got := want{c.HTTP.Addr, c.Log.Level, c.Storage.Filesystem.Root, c.HTTP.IdleTimeout, c.ReadOnly}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The last flag for a key wins, whether it is the key's own or --set.
func TestFlagsApplyInCommandLineOrder(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--addr", ":1", "--set", "http.addr=:2"}, ":2"},
		{[]string{"--set", "http.addr=:2", "--addr", ":1"}, ":1"},
		{[]string{"--addr", ":1", "--addr", ":3"}, ":3"},
		{[]string{"--set", "http.addr=:2", "--set", "http.addr=:4"}, ":4"},
	} {
		c, err := Load("", nil, parseFlags(t, tc.flags...))
		if err != nil {
			t.Fatal(err)
		}
		if c.HTTP.Addr != tc.want {
			t.Errorf("%q: addr %s, want %s", tc.flags, c.HTTP.Addr, tc.want)
		}
	}
}

// Secrets given with --set are named, so serve can warn that any local
// user reads them in the process's arguments; other keys are not.
func TestSecretsOnCommandLine(t *testing.T) {
	fs := parseFlags(t, "--set", "redis.password=hunter2", "--set", "http.addr=:1", "--set", "storage.s3.secretkey=k", "--set", "redis.password=again")
	if got := SecretsOnCommandLine(fs); !slices.Equal(got, []string{"redis.password", "storage.s3.secretkey"}) {
		t.Errorf("SecretsOnCommandLine = %q", got)
	}
	if got := SecretsOnCommandLine(parseFlags(t, "--set", "http.addr=:1", "--addr", ":2")); got != nil {
		t.Errorf("no secret given, got %q", got)
	}
}

func TestConfigFileFromFlagOrEnv(t *testing.T) {
	fromFlag := writeFile(t, "http:\n  addr: :1111\n")
	fromEnv := writeFile(t, "http:\n  addr: :2222\n")
	env := []string{ConfigEnv + "=" + fromEnv}

	c, err := Load("", env, parseFlags(t, "--config", fromFlag))
	if err != nil || c.HTTP.Addr != ":1111" {
		t.Fatalf("--config: addr %v, err %v", c, err)
	}
	c, err = Load("", env, parseFlags(t))
	if err != nil || c.HTTP.Addr != ":2222" {
		t.Fatalf("%s: addr %v, err %v", ConfigEnv, c, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil, nil); err == nil {
		t.Fatal("a missing config file must be an error")
	}
}

// TestBadValues checks that each bad setting stops the load with a message
// naming the key, what is allowed, and where the value came from.
func TestBadValues(t *testing.T) {
	notAFile := t.TempDir()
	for _, tc := range []struct {
		name  string
		yaml  string
		env   []string
		flags []string
		want  []string // substrings of the error
	}{
		{name: "addr not host:port", yaml: "http:\n  addr: x\n",
			want: []string{`http.addr: "x" is not host:port`, "line 2"}},
		{name: "addr bad port", flags: []string{"--addr", ":99999"},
			want: []string{"http.addr", `port "99999"`, "flag --addr"}},
		{name: "proxy not an address", env: []string{"LADING_HTTP_TRUSTEDPROXIES=10.0.0.0/8, ingress.local"},
			want: []string{`http.trustedproxies: "ingress.local" is neither an address nor a CIDR range`, "env LADING_HTTP_TRUSTEDPROXIES"}},
		{name: "eviction under an hour", yaml: "proxy:\n  remoteurl: https://registry-1.docker.io\n  evictafter: 10m\n",
			want: []string{"proxy.evictafter: 10m0s must be 0 (keep everything) or at least 1h"}},
		{name: "eviction without a mirror", env: []string{"LADING_PROXY_EVICTAFTER=30d"},
			want: []string{"proxy.evictafter: needs proxy.remoteurl", "LADING_PROXY_EVICTAFTER"}},
		{name: "sample ratio over 1", yaml: "tracing:\n  sampleratio: 2\n",
			want: []string{"tracing.sampleratio: 2 must be from 0 to 1"}},
		{name: "sample ratio not a number", env: []string{"LADING_TRACING_SAMPLERATIO=half"},
			want: []string{`tracing.sampleratio: "half" is not a number`, "LADING_TRACING_SAMPLERATIO"}},
		{name: "tracing endpoint not a URL", yaml: "tracing:\n  endpoint: otel-collector:4318\n",
			want: []string{`tracing.endpoint: "otel-collector:4318" is not an http:// or https:// URL`}},
		{name: "pprof without a debug listener", yaml: "http:\n  pprof: true\n",
			want: []string{"http.pprof: needs http.debugaddr"}},
		{name: "unknown driver", yaml: "storage:\n  driver: foo\n",
			want: []string{`storage.driver: "foo" must be one of filesystem, inmemory, s3`}},
		{name: "duration in file", yaml: "http:\n  idletimeout: forever\n",
			want: []string{`http.idletimeout: "forever" is not a duration`, "line 2"}},
		{name: "duration in env", env: []string{"LADING_GC_GRACE=1 day"},
			want: []string{`gc.grace: "1 day" is not a duration`, "env LADING_GC_GRACE"}},
		{name: "bool in env", env: []string{"LADING_READONLY=maybe"},
			want: []string{`readonly: "maybe" is not true or false`, "LADING_READONLY"}},
		{name: "int in file", yaml: "redis:\n  db: two\n",
			want: []string{`redis.db: "two" is not a whole number`}},
		{name: "unknown env var", env: []string{"LADING_HTTP_ADR=:1"},
			want: []string{"LADING_HTTP_ADR: is not a Lading setting", "LADING_HTTP_ADDR"}},
		{name: "unknown --set key", flags: []string{"--set", "http.adr=:1"},
			want: []string{"http.adr: unknown key", "flag --set"}},
		{name: "log level", env: []string{"LADING_LOG_LEVEL=verbose"},
			want: []string{`log.level: "verbose" must be one of debug, info, warn, error`, "LADING_LOG_LEVEL"}},
		{name: "log format", yaml: "log:\n  format: xml\n",
			want: []string{`log.format: "xml" must be one of text, json`}},
		{name: "negative drain", yaml: "http:\n  draintimeout: -1s\n",
			want: []string{"http.draintimeout: -1s must be 0 or more"}},
		{name: "zero header timeout", yaml: "http:\n  readheadertimeout: 0s\n",
			want: []string{"http.readheadertimeout: 0s must be greater than 0"}},
		{name: "zero idle timeout", yaml: "http:\n  idletimeout: 0s\n",
			want: []string{"http.idletimeout: 0s must be greater than 0"}},
		{name: "tls cert without key", yaml: "http:\n  tls:\n    cert: " + notAFile + "\n",
			want: []string{"http.tls.key: must be set together with http.tls.cert", "http.tls.cert: " + fmt.Sprintf("%q", notAFile) + " is a folder"}},
		{name: "missing htpasswd", env: []string{"LADING_AUTH_HTPASSWD_PATH=/nonexistent/htpasswd"},
			want: []string{`auth.htpasswd.path: cannot use "/nonexistent/htpasswd"`, "env LADING_AUTH_HTPASSWD_PATH"}},
		{name: "s3 without bucket", env: []string{"LADING_STORAGE_DRIVER=s3"},
			want: []string{"storage.s3.bucket: must be set when storage.driver is s3"}},
		{name: "s3 bad bucket", env: []string{"LADING_STORAGE_DRIVER=s3", "LADING_STORAGE_S3_BUCKET=Bad_Bucket"},
			want: []string{`storage.s3.bucket: "Bad_Bucket" is not a bucket name`}},
		{name: "s3 key without secret", yaml: "storage:\n  driver: s3\n  s3:\n    bucket: images\n    accesskey: AK\n",
			want: []string{"storage.s3.secretkey: must be set together with storage.s3.accesskey"}},
		{name: "s3 endpoint", yaml: "storage:\n  driver: s3\n  s3:\n    bucket: images\n    endpoint: localhost:9000\n",
			want: []string{`storage.s3.endpoint: "localhost:9000" is not an http:// or https:// URL`}},
		{name: "jwks with a password, mistyped", env: []string{"LADING_AUTH_TOKEN_JWKS=htps://svc:Sup3rS3cret@issuer.example/jwks", "LADING_AUTH_TOKEN_REALM=https://auth.example.com/token"},
			want: []string{`auth.token.jwks: "htps://svc:xxxxx@issuer.example/jwks" is not an http:// or https:// URL`}},
		{name: "s3 sse", env: []string{"LADING_STORAGE_DRIVER=s3", "LADING_STORAGE_S3_BUCKET=images", "LADING_STORAGE_S3_SSE=rot13"},
			want: []string{`storage.s3.sse: "rot13" must be one of , AES256, aws:kms`}},
		{name: "redis addr", env: []string{"LADING_REDIS_ADDR=redis"},
			want: []string{`redis.addr: "redis" is not host:port`}},
		{name: "token realm without verifier", yaml: "auth:\n  token:\n    realm: https://auth.example.com/token\n",
			want: []string{"auth.token.realm: is set but nothing verifies tokens"}},
		{name: "external token without realm", env: []string{"LADING_AUTH_TOKEN_JWKS=https://auth.example.com/jwks"},
			want: []string{"auth.token.realm: must be set with an external token issuer"}},
		{name: "built-in and external issuer", env: []string{"LADING_AUTH_TOKEN_JWKS=https://auth.example.com/jwks", "LADING_AUTH_TOKEN_SERVER_ENABLED=true"},
			want: []string{"auth.token.server.enabled: excludes auth.token.certbundle and auth.token.jwks", "env LADING_AUTH_TOKEN_SERVER_ENABLED"}},
		{name: "short token lifetime", env: []string{"LADING_AUTH_TOKEN_SERVER_ENABLED=true", "LADING_AUTH_TOKEN_SERVER_EXPIRY=30s"},
			want: []string{"auth.token.server.expiry: 30s is under the token specification's least lifetime, 1m"}},
		{name: "rate limit", yaml: "auth:\n  ratelimit:\n    burst: 0\n",
			want: []string{"auth.ratelimit.burst: 0 must be 1 or more"}},
		{name: "size", env: []string{"LADING_HTTP_MAXMANIFESTSIZE=4 megs"},
			want: []string{`http.maxmanifestsize: "4 megs" is not a size`, "LADING_HTTP_MAXMANIFESTSIZE"}},
		{name: "s3 part size", yaml: "storage:\n  driver: s3\n  s3:\n    bucket: images\n    partsize: 1MiB\n",
			want: []string{"storage.s3.partsize: 1MiB must be from 5MiB to 5GiB"}},
		{name: "section as scalar", yaml: "http: yes\n",
			want: []string{"http: must be a mapping"}},
		{name: "key as list", yaml: "http:\n  addr: [a, b]\n",
			want: []string{"http.addr: must be a single value"}},
		{name: "key twice", yaml: "http:\n  addr: :1\n  addr: :2\n",
			want: []string{"http.addr: is set twice"}},
		{name: "two problems at once", yaml: "storage:\n  driver: foo\nlog:\n  level: loud\n",
			want: []string{"storage.driver", "log.level"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadFails(t, tc.yaml, tc.env, parseFlags(t, tc.flags...), tc.want)
		})
	}
}

func TestUnknownYAMLKey(t *testing.T) {
	_, err := Parse("lading.yaml", []byte("http:\n  addr: :5000\n  adr: :5001\nstorge:\n  driver: s3\n"))
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	for _, w := range []string{
		"http.adr: unknown key; allowed in http: addr, tls,", "lading.yaml line 3",
		"storge: unknown key; allowed here: http, log, storage,", "lading.yaml line 4",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestEmptyAndNullValues(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "http:\n", "http:\n  addr:\n"} {
		c, err := Parse("x", []byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if c.HTTP.Addr != ":5000" {
			t.Errorf("%q changed http.addr to %q", doc, c.HTTP.Addr)
		}
	}
}

// TestExample checks that Example loads, equals the defaults, and names
// every key of Config exactly once, each documented.
func TestExample(t *testing.T) {
	ex := Example()
	c, err := Parse("example", []byte(ex))
	if err != nil {
		t.Fatalf("Example does not load: %v\n%s", err, ex)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Example loads as\n%s\nwant the defaults\n%s", c, Default())
	}

	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(ex), &doc); err != nil {
		t.Fatal(err)
	}
	var inExample []string
	var leaves func(n *yaml.Node, prefix string)
	leaves = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			path := strings.TrimPrefix(prefix+"."+n.Content[i].Value, ".")
			if n.Content[i+1].Kind == yaml.MappingNode {
				leaves(n.Content[i+1], path)
				continue
			}
			inExample = append(inExample, path)
		}
	}
	leaves(doc.Content[0], "")

	var inStruct []string
	var fields func(t reflect.Type, prefix string)
	fields = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			path := strings.TrimPrefix(prefix+"."+f.Tag.Get("yaml"), ".")
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				fields(f.Type, path)
				continue
			}
			inStruct = append(inStruct, path)
		}
	}
	fields(reflect.TypeFor[Config](), "")

	if !slices.Equal(inExample, inStruct) {
		t.Errorf("Example keys\n%v\nstruct keys\n%v", inExample, inStruct)
	}
	keys, sections := schema()
	envs := map[string]bool{}
	for _, k := range keys {
		if k.Doc == "" {
			t.Errorf("%s has no doc tag", k.Path)
		}
		if envs[k.Env] {
			t.Errorf("%s: environment name %s used twice", k.Path, k.Env)
		}
		envs[k.Env] = true
		if !strings.Contains(ex, "["+k.Env+"]") {
			t.Errorf("Example does not name %s", k.Env)
		}
	}
	for _, s := range sections {
		if s.Doc == "" {
			t.Errorf("section %s has no doc tag", s.Path)
		}
	}
}

func TestEnvNames(t *testing.T) {
	for path, want := range map[string]string{
		"http.addr":               "LADING_HTTP_ADDR",
		"storage.filesystem.root": "LADING_STORAGE_FILESYSTEM_ROOT",
		"storage.s3.accesskey":    "LADING_STORAGE_S3_ACCESSKEY",
		"auth.htpasswd.path":      "LADING_AUTH_HTPASSWD_PATH",
		"redis.addr":              "LADING_REDIS_ADDR",
	} {
		if !slices.Contains(Keys(), path) {
			t.Errorf("no key %s", path)
		}
		if got := EnvName(path); got != want {
			t.Errorf("EnvName(%s) = %s, want %s", path, got, want)
		}
	}
	c, err := Load("", []string{
		"LADING_STORAGE_DRIVER=s3",
		"LADING_STORAGE_S3_BUCKET=images",
		"LADING_STORAGE_S3_ACCESSKEY=AK",
		"LADING_STORAGE_S3_SECRETKEY=SK",
		"LADING_STORAGE_S3_FORCEPATHSTYLE=true",
		"LADING_STORAGE_S3_ENDPOINT=http://127.0.0.1:7070",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Storage.S3
	if s.Bucket != "images" || s.AccessKey != "AK" || s.SecretKey.Reveal() != "SK" || !s.ForcePathStyle || s.Endpoint != "http://127.0.0.1:7070" {
		t.Fatalf("S3 settings from env: %+v", s)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	const s3Secret, redisSecret = "s3-very-secret", "redis-very-secret"
	c, err := Load("", []string{
		"LADING_STORAGE_S3_ACCESSKEY=AK",
		"LADING_STORAGE_S3_SECRETKEY=" + s3Secret,
		"LADING_REDIS_ADDR=127.0.0.1:6379",
		"LADING_REDIS_PASSWORD=" + redisSecret,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.S3.SecretKey.Reveal() != s3Secret || c.Redis.Password.Reveal() != redisSecret {
		t.Fatal("secrets not loaded")
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", *c, "s3", c.Storage.S3)
	asJSON, _ := json.Marshal(c)
	outputs := map[string]string{
		"String":   c.String(),
		"%v":       fmt.Sprintf("%v", c),
		"%+v":      fmt.Sprintf("%+v", *c),
		"%#v":      fmt.Sprintf("%#v", *c),
		"s3 %+v":   fmt.Sprintf("%+v", c.Storage.S3),
		"redis %s": fmt.Sprintf("%s %q", c.Redis.Password, c.Redis.Password),
		"slog":     logged.String(),
		"json":     string(asJSON),
	}
	for name, out := range outputs {
		if strings.Contains(out, s3Secret) || strings.Contains(out, redisSecret) {
			t.Errorf("%s shows a secret: %s", name, out)
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("%s does not show %s: %s", name, redacted, out)
		}
	}
	// String is YAML that loads back, with the secret replaced.
	back, err := Parse("string", []byte(c.String()))
	if err != nil {
		t.Fatalf("String does not load back: %v", err)
	}
	if back.Storage.S3.AccessKey != "AK" || back.Storage.S3.SecretKey.Reveal() != redacted {
		t.Errorf("String round trip: %+v", back.Storage.S3)
	}
}

// A --set argument mistyped without its '=' is refused without being
// shown: it may be a secret (redis.password:...).
func TestMistypedSetHidesItsArgument(t *testing.T) {
	const secret = "redis-very-secret"
	var out bytes.Buffer
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(&out)
	BindFlags(fs)
	err := fs.Parse([]string{"--set", "redis.password:" + secret})
	if err == nil {
		_, err = Load("", nil, fs)
	}
	if err == nil || !strings.Contains(err.Error(), "want key=value") {
		t.Fatalf("got %v, want a refusal asking for key=value", err)
	}
	if strings.Contains(err.Error()+out.String(), secret) {
		t.Errorf("the argument is shown: %v %s", err, &out)
	}
}

func TestEveryProblemReportedOnce(t *testing.T) {
	_, err := Load("", []string{"LADING_HTTP_IDLETIMEOUT=soon", "LADING_STORAGE_DRIVER=tape", "LADING_NOPE=1"}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, w := range []string{"http.idletimeout", "storage.driver", "LADING_NOPE"} {
		if strings.Count(msg, w) != 1 {
			t.Errorf("%q appears %d times in\n%s", w, strings.Count(msg, w), msg)
		}
	}
}

func TestDurations(t *testing.T) {
	for text, want := range map[string]time.Duration{"90m": 90 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "0d": 0, "0": 0} {
		if got, err := ParseDuration(text); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", text, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "1.5d", "7 d", "1000000d", "soon"} {
		if d, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %s, accepted", bad, d)
		}
	}
	c, err := Load(writeFile(t, "gc:\n  grace: 2d\n"), nil, nil)
	if err != nil {
		t.Fatalf("gc.grace: 2d: %v", err)
	}
	if c.GC.Grace != 48*time.Hour {
		t.Errorf("gc.grace: 2d is %s", c.GC.Grace)
	}
}

func TestBytes(t *testing.T) {
	for text, want := range map[string]Bytes{"4MiB": 4 << 20, "512KiB": 512 << 10, " 5 GiB ": 5 << 30, "1048576": 1 << 20, "10B": 10, "0": 0} {
		got, err := parseBytes(text)
		if err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", text, got, err, want)
		}
		if back, err := parseBytes(got.String()); err != nil || back != got {
			t.Errorf("%d prints as %q, which reads back as %d, %v", got, got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "4MB", "-1", "1.5GiB", "99999999999TiB", "MiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
	if s := Bytes(16 << 20).String(); s != "16MiB" {
		t.Errorf("16MiB prints as %s", s)
	}
}

// The variables Kubernetes gives a pod for Services named lading and
// lading-redis, and docker --link for such links, name no setting, yet the
// registry starts.
func TestServiceLinkVariablesIgnored(t *testing.T) {
	env := []string{
		"LADING_SERVICE_HOST=10.0.0.1", "LADING_SERVICE_PORT=5000", "LADING_SERVICE_PORT_HTTP=5000",
		"LADING_PORT=tcp://10.0.0.1:5000", "LADING_PORT_5000_TCP=tcp://10.0.0.1:5000",
		"LADING_PORT_5000_TCP_PROTO=tcp", "LADING_PORT_5000_TCP_PORT=5000", "LADING_PORT_5000_TCP_ADDR=10.0.0.1",
		"LADING_REDIS_SERVICE_HOST=10.0.0.2", "LADING_REDIS_PORT=tcp://10.0.0.2:6379",
		"LADING_REDIS_PORT_6379_TCP_ADDR=10.0.0.2",
		// docker --link: the linked container's name and variables.
		"LADING_REDIS_NAME=/app/lading-redis", "LADING_REDIS_ENV_REDIS_VERSION=7.2.4", "LADING_NAME=/web/lading",
	}
	if _, err := Load("", env, nil); err != nil {
		t.Fatalf("service link variables: %v", err)
	}
	// A misspelt setting is still refused beside them, even one shaped
	// like them whose value is not of their kind.
	for _, wrong := range []string{"LADING_HTTP_ADR=:1", "LADING_HTTP_PORT=8080", "LADING_REDIS_PORT=6380", "LADING_DEBUG_SERVICE_HOST=debug.local", "LADING_REDIS_NAME=redis"} {
		if _, err := Load("", append(env, wrong), nil); err == nil {
			t.Fatalf("%s accepted", wrong)
		}
	}
}

// A file of several YAML documents is refused: the later ones would be
// dropped unread, an auth section with them.
func TestSecondYAMLDocumentRefused(t *testing.T) {
	for _, doc := range []string{
		"http:\n  addr: :5001\n---\nauth:\n  htpasswd:\n    path: /etc/lading/htpasswd\n",
		"---\nhttp:\n  addr: :5001\n---\nreadonly: true\n",
		"http:\n  addr: :5001\n---\n---\nreadonly: true\n",
	} {
		_, err := Parse("lading.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), "second YAML document") {
			t.Errorf("%q: %v", doc, err)
		}
	}
	for _, doc := range []string{"---\nhttp:\n  addr: :5001\n", "# settings\n---\nhttp:\n  addr: :5001\n...\n", "http:\n  addr: :5001\n---\n"} {
		if c, err := Parse("lading.yaml", []byte(doc)); err != nil || c.HTTP.Addr != ":5001" {
			t.Errorf("%q: %v", doc, err)
		}
	}
}

// A serve configuration reused by lading gc or fsck (a scheduled job)
// needs none of the listener's or authentication's files in place; its
// store's settings, keys and values are still checked.
func TestLoadStoreLeavesServingFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "lading.yaml")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serving := "http:\n  tls:\n    cert: /nonexistent/c.pem\n    key: /nonexistent/k.pem\nauth:\n  htpasswd:\n    path: /nonexistent/htpasswd\n" +
		"tags:\n  immutable: \"v*\"\nstorage:\n  filesystem:\n    root: " + filepath.Join(dir, "data") + "\n"
	p := write(serving)
	if _, err := Load(p, nil, nil); err == nil || !strings.Contains(err.Error(), "http.tls.cert") {
		t.Fatalf("Load with absent certificate files: %v, want them named", err)
	}
	cfg, err := LoadStore(p, nil)
	if err != nil {
		t.Fatalf("LoadStore with absent serving files: %v", err)
	}
	if cfg.Storage.Filesystem.Root != filepath.Join(dir, "data") {
		t.Errorf("root %q", cfg.Storage.Filesystem.Root)
	}
	// Quotas are checked by serve alone: a job may share a read-only
	// replica's file.
	if _, err := LoadStore(write(serving+"readonly: true\nquotas:\n  - {repository: a, limit: 0}\n"), nil); err != nil {
		t.Errorf("LoadStore with quotas serve refuses: %v", err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{serving + "gc:\n  grace: -1s\n", "gc.grace"},
		{serving + "redis:\n  password: x\n", "redis.password"},
		{strings.Replace(serving, `"v*"`, `"a/:v*"`, 1), "tags.immutable"}, // an import follows it
		{"http:\n  adr: :5000\n", "http.adr"},
		{"http:\n  draintimeout: soon\n", "http.draintimeout"},
	} {
		if _, err := LoadStore(write(bad.yaml), nil); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("LoadStore of %q: %v, want %s named", bad.yaml, err, bad.want)
		}
	}
}

// TestSampleRatio reads a fraction from each layer and prints it back.
func TestSampleRatio(t *testing.T) {
	cfg, err := Load("", []string{"LADING_TRACING_SAMPLERATIO=0.25"}, parseFlags(t))
	if err != nil || cfg.Tracing.SampleRatio != 0.25 {
		t.Fatalf("from the environment: %v %v", cfg, err)
	}
	cfg, err = Load("", nil, parseFlags(t, "--set", "tracing.sampleratio=1e-3"))
	if err != nil || cfg.Tracing.SampleRatio != 0.001 {
		t.Fatalf("from a flag: %v %v", cfg, err)
	}
	if Default().Tracing.SampleRatio != 1 {
		t.Error("traces are not all kept by default")
	}
}
