package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lading-registry/lading/internal/yamldoc"
)

// ConfigEnv names the configuration file when neither Load's path nor the
// --config flag does.
const ConfigEnv = EnvPrefix + "CONFIG"

// Error is a problem with one setting: Key is its path ("http.addr") or,
// for a name Lading does not know, the name as written; Source says where
// the value came from ("lading.yaml line 3", "env LADING_HTTP_ADDR",
// "flag --addr"), empty for a default.
type Error struct {
	Key    string
	Source string
	Msg    string
}

func (e *Error) Error() string {
	if e.Source == "" {
		return e.Key + ": " + e.Msg
	}
	return e.Key + ": " + e.Msg + " (" + e.Source + ")"
}

// Load builds the configuration: defaults, then the YAML file at path,
// then LADING_* variables from env (os.Environ() form), then the flags bound
// by BindFlags that were set on flags. An empty path falls back to --config,
// then to LADING_CONFIG; with none of them there is no file. flags may be
// nil. Every problem found is returned together, each naming its key.
func Load(path string, env []string, flags *flag.FlagSet) (*Config, error) {
	return load(path, env, flags, nil)
}

// load is Load, leaving out what validation finds in the keys ignore
// names (nil: none).
func load(path string, env []string, flags *flag.FlagSet, ignore func(key string) bool) (*Config, error) {
	l := newLoader()
	l.ignore = ignore
	if path == "" {
		path = configPath(flags, env)
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := l.file(path, data); err != nil {
			return nil, err
		}
	}
	l.env(env)
	l.flags(flags)
	return l.result()
}

// LoadStore is Load for the commands that open the store alone (lading gc
// and fsck): a serve configuration reused for them, say by a scheduled
// job, needs none of the listener's or the authentication's files in
// place, so what validation finds in those sections is not theirs to
// report. The file must still parse, every key exist and every value be
// of its type.
func LoadStore(path string, env []string) (*Config, error) {
	return load(path, env, nil, servingOnly)
}

// servingOnly says whether key is read by lading serve alone.
func servingOnly(key string) bool {
	if key == "quotas" || strings.HasPrefix(key, "quotas[") {
		return true
	}
	for _, section := range []string{"http.", "auth.", "proxy.", "notifications.", "retention."} {
		if strings.HasPrefix(key, section) {
			return true
		}
	}
	return false
}

// Parse reads one YAML document over the defaults and validates it, with
// name used in messages, for callers that hold the YAML in memory.
func Parse(name string, data []byte) (*Config, error) {
	l := newLoader()
	if err := l.file(name, data); err != nil {
		return nil, err
	}
	return l.result()
}

func configPath(flags *flag.FlagSet, env []string) string {
	if flags != nil {
		if f := flags.Lookup("config"); f != nil && f.Value.String() != "" {
			return f.Value.String()
		}
	}
	for _, kv := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(kv, ConfigEnv+"="); ok {
			return v
		}
	}
	return ""
}

// loader applies layers onto cfg, remembering where each key was last set
// so validation can point at the right line, variable or flag.
type loader struct {
	cfg    *Config
	origin map[string]string
	errs   []error
	ignore func(key string) bool // validation's findings left out
}

func newLoader() *loader {
	return &loader{cfg: Default(), origin: map[string]string{}}
}

// result validates what the layers built and reports every problem at
// once; a value that did not parse left its default, which is not
// judged again (a size left out of a list item is 0, which its check
// would refuse too).
func (l *loader) result() (*Config, error) {
	unread := map[string]bool{}
	for _, err := range l.errs {
		if ce, ok := err.(*Error); ok {
			unread[ce.Key] = true
		}
	}
	for _, err := range validate(l.cfg, l.origin) {
		if ce, ok := err.(*Error); ok && (unread[ce.Key] || l.ignore != nil && l.ignore(ce.Key)) {
			continue
		}
		l.errs = append(l.errs, err)
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return l.cfg, nil
}

func (l *loader) set(k key, text, source string) {
	if k.isList() {
		l.setListText(k, text, source)
		return
	}
	if err := k.set(l.cfg, text); err != nil {
		l.errs = append(l.errs, &Error{Key: k.Path, Source: source, Msg: err.Error()})
		return
	}
	l.origin[k.Path] = source
}

func (l *loader) fail(keyPath, source, format string, args ...any) {
	l.errs = append(l.errs, &Error{Key: keyPath, Source: source, Msg: fmt.Sprintf(format, args...)})
}

// file decodes YAML strictly: every key must be one Config declares, so a
// typo stops the start instead of silently keeping a default. A syntax
// error is returned at once; key errors are collected.
func (l *loader) file(name string, data []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	// A second document (after a line of ---) would be dropped unread,
	// and with it whatever it sets: an auth section, readonly.
	if err := yamldoc.NoMore(dec); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if yamldoc.Empty(&doc) {
		return nil
	}
	root := doc.Content[0]
	l.mapping(name, root, "")
	return nil
}

func (l *loader) mapping(name string, n *yaml.Node, prefix string) {
	where := func(n *yaml.Node) string { return fmt.Sprintf("%s line %d", name, n.Line) }
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	label := prefix
	if label == "" {
		label = "(top level)"
	}
	if n.Kind != yaml.MappingNode {
		l.fail(label, where(n), "must be a mapping of keys to values")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if vn.Kind == yaml.AliasNode {
			vn = vn.Alias
		}
		path := kn.Value
		if prefix != "" {
			path = prefix + "." + kn.Value
		}
		if seen[kn.Value] {
			l.fail(path, where(kn), "is set twice")
			continue
		}
		seen[kn.Value] = true
		if isSection(path) {
			if vn.Tag == "!!null" {
				continue
			}
			l.mapping(name, vn, path)
			continue
		}
		k, ok := lookupKey(path)
		if !ok {
			l.fail(path, where(kn), "unknown key; %s", known(prefix))
			continue
		}
		switch {
		case k.isList():
			l.setList(k, vn, where)
		case vn.Kind != yaml.ScalarNode:
			l.fail(path, where(vn), "must be a single value, not a list or mapping")
		case vn.Tag == "!!null":
			// "key:" with no value keeps the default.
		default:
			l.set(k, vn.Value, where(vn))
		}
	}
}

func isSection(path string) bool {
	_, sections := schema()
	return slices.ContainsFunc(sections, func(s section) bool { return s.Path == path })
}

// known lists the keys allowed beside an unknown one, which is usually
// enough to spot the typo.
func known(prefix string) string {
	var names []string
	walkFields(func(path string, f reflect.StructField, _ []int, _ int) {
		if parent(path) == prefix {
			names = append(names, f.Tag.Get("yaml"))
		}
	})
	where := "here"
	if prefix != "" {
		where = "in " + prefix
	}
	return "allowed " + where + ": " + strings.Join(names, ", ")
}

// parent is the section holding path, "" at the top level.
func parent(path string) string {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return ""
	}
	return path[:i]
}

// serviceLink matches the variables Kubernetes (and docker --link) give a
// container for each service of its namespace: a Service named lading, or
// lading-redis, makes LADING_SERVICE_HOST, LADING_PORT_5000_TCP_ADDR,
// LADING_REDIS_PORT and the like, which name no setting but must not stop
// the registry from starting.
// docker --link also gives the linked container's name, /<container>/<alias>
// in <ALIAS>_NAME, and each of its variables as <ALIAS>_ENV_<NAME>.
// Only names of that shape holding values of their kind are passed over,
// so that a guess such as LADING_HTTP_PORT=8080 is still refused.
var serviceLink = regexp.MustCompile(`^` + EnvPrefix + `(?:[A-Z0-9_]+?_)??(SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_[0-9]+_(?:TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?|NAME|ENV_[A-Za-z0-9_]+)$`)

var (
	linkURL   = regexp.MustCompile(`^(tcp|udp|sctp)://\S+:[0-9]+$`)
	linkProto = regexp.MustCompile(`^(tcp|udp|sctp)$`)
	linkPort  = regexp.MustCompile(`^[0-9]+$`)
	linkName  = regexp.MustCompile(`^/[^/\s]+/[^/\s]+$`)
)

// isServiceLink reports whether name=value is one of those variables.
func isServiceLink(name, value string) bool {
	m := serviceLink.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	kind, part := m[1], m[2]
	switch {
	case kind == "NAME":
		return linkName.MatchString(value)
	case strings.HasPrefix(kind, "ENV_"):
		return true // the linked container's own variable, any value
	case kind == "SERVICE_HOST" || part == "_ADDR":
		return net.ParseIP(value) != nil
	case strings.HasPrefix(kind, "SERVICE_PORT") || part == "_PORT":
		return linkPort.MatchString(value)
	case part == "_PROTO":
		return linkProto.MatchString(value)
	default: // PORT, PORT_<n>_<proto>
		return linkURL.MatchString(value)
	}
}

// env applies LADING_* variables. A LADING_ name that matches no key is an
// error rather than ignored: a misspelt override must not go unnoticed
// (service links excepted).
// LADING_TEST_* and LADING_BENCH_* belong to the project's own test and
// benchmark tooling, which runs lading with them in its environment.
func (l *loader) env(env []string) {
	keys, _ := schema()
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || name == ConfigEnv ||
			strings.HasPrefix(name, EnvPrefix+"TEST_") || strings.HasPrefix(name, EnvPrefix+"BENCH_") {
			continue
		}
		i := slices.IndexFunc(keys, func(k key) bool { return k.Env == name })
		if i < 0 && isServiceLink(name, value) {
			continue
		}
		if i < 0 {
			l.fail(name, "environment", "is not a Lading setting (settings are %s plus the key path, e.g. %s)", EnvPrefix, EnvName("http.addr"))
			continue
		}
		l.set(keys[i], value, "env "+name)
	}
}
