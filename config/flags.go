package config

import (
	"flag"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// flagKeys are the settings common enough to deserve their own flag; every
// other key is reachable with --set key=value.
var flagKeys = []struct{ name, key, usage string }{
	{"addr", "http.addr", "listen address, host:port"},
	{"debug-addr", "http.debugaddr", "separate listener for /metrics and health, host:port"},
	{"tls-cert", "http.tls.cert", "PEM certificate file; with --tls-key serves HTTPS"},
	{"tls-key", "http.tls.key", "PEM private key file"},
	{"driver", "storage.driver", "storage driver: filesystem, inmemory or s3"},
	{"root", "storage.filesystem.root", "data folder of the filesystem driver"},
	{"log-level", "log.level", "debug, info, warn or error"},
	{"log-format", "log.format", "text or json"},
	{"read-only", "readonly", "refuse writes, keep serving reads"},
}

// BindFlags registers --config, the common settings' flags and a
// repeatable --set key=value on fs. Load applies the ones given on the
// command line last, over file and environment.
func BindFlags(fs *flag.FlagSet) {
	fs.String("config", "", "YAML configuration file (or "+ConfigEnv+")")
	g := &given{}
	for _, f := range flagKeys {
		k, ok := lookupKey(f.key)
		if !ok {
			panic("config: flag for unknown key " + f.key) // a programming error caught by any test
		}
		isBool := k.Type.Kind() == reflect.Bool
		usage := fmt.Sprintf("%s (%s, %s)", f.usage, k.Path, k.Env)
		fs.Var(&keyFlag{key: k.Path, name: f.name, isBool: isBool, given: g}, f.name, usage)
	}
	fs.Var(&setFlag{given: g}, "set", "set any key, e.g. --set storage.s3.bucket=images (repeatable)")
}

// given keeps the settings flags give, in command-line order, so that the
// last one for a key wins whether it came as its own flag or by --set.
type given struct{ settings []givenSetting }

type givenSetting struct{ key, value, source string }

// keyFlag holds the text of one flag until Load parses it like any other
// source, so flags, file and environment share one parser and one message.
type keyFlag struct {
	key, name, value string
	isBool           bool
	given            *given
}

func (f *keyFlag) String() string { return f.value }
func (f *keyFlag) Set(s string) error {
	f.value = s
	f.given.settings = append(f.given.settings, givenSetting{f.key, s, "flag --" + f.name})
	return nil
}
func (f *keyFlag) IsBoolFlag() bool { return f.isBool }

type setFlag struct {
	pairs []string
	given *given
}

func (f *setFlag) String() string { return strings.Join(f.pairs, " ") }
func (f *setFlag) Set(s string) error {
	if !strings.Contains(s, "=") {
		// Refused by Load, not here: the flag package would print the
		// argument, which may be a mistyped secret (redis.password:...).
		f.given.settings = append(f.given.settings, givenSetting{source: "flag --set"})
		return nil
	}
	f.pairs = append(f.pairs, s)
	path, value, _ := strings.Cut(s, "=")
	f.given.settings = append(f.given.settings, givenSetting{path, value, "flag --set " + path})
	return nil
}

// flags applies the settings the bound flags gave, in command-line order;
// an unset flag gives none, so it never hides a file or environment value.
func (l *loader) flags(fs *flag.FlagSet) {
	if fs == nil {
		return
	}
	fl := fs.Lookup("set")
	if fl == nil {
		return
	}
	set, ok := fl.Value.(*setFlag)
	if !ok {
		return
	}
	for _, g := range set.given.settings {
		if g.key == "" {
			l.fail("--set", g.source, "want key=value, e.g. http.addr=:5000 (the argument is not shown: it may hold a secret)")
			continue
		}
		k, ok := lookupKey(g.key)
		if !ok {
			l.fail(g.key, g.source, "unknown key; see `lading config example` for every key")
			continue
		}
		l.set(k, g.value, g.source)
	}
}

// SecretsOnCommandLine names the secret keys (passwords, secret keys) that
// fs's --set gave: any local user reads a process's arguments (ps,
// /proc/PID/cmdline), so serve warns of each.
func SecretsOnCommandLine(fs *flag.FlagSet) []string {
	fl := fs.Lookup("set")
	if fl == nil {
		return nil
	}
	set, ok := fl.Value.(*setFlag)
	if !ok {
		return nil
	}
	var out []string
	for _, g := range set.given.settings {
		if k, ok := lookupKey(g.key); ok && k.Secret && !slices.Contains(out, k.Path) {
			out = append(out, k.Path)
		}
	}
	return out
}
