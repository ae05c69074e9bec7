package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
)

const exampleHeader = `# Lading configuration: every key, with its default value.
# Precedence: defaults < this file < LADING_* environment variables < flags.
# A key's variable is LADING_ plus its path in capitals joined by _,
# e.g. storage.filesystem.root -> LADING_STORAGE_FILESYSTEM_ROOT.
`

// Example returns a complete configuration file: every key with its
// default value, what it is for, and its environment variable. It is made
// from the Config struct itself, so it cannot fall behind.
func Example() string {
	return exampleHeader + render(Default(), true)
}

// String renders the configuration as YAML that Parse reads back, except
// that secrets show as "[redacted]".
func (c Config) String() string {
	return render(&c, false)
}

// LogValue logs the configuration as nested groups, secrets redacted.
func (c Config) LogValue() slog.Value {
	return group(reflect.ValueOf(c))
}

func group(v reflect.Value) slog.Value {
	t := v.Type()
	attrs := make([]slog.Attr, 0, t.NumField())
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("yaml")
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			attrs = append(attrs, slog.Attr{Key: name, Value: group(f)})
			continue
		}
		attrs = append(attrs, slog.Any(name, f.Interface()))
	}
	return slog.GroupValue(attrs...)
}

func render(c *Config, docs bool) string {
	var b strings.Builder
	walkFields(func(path string, f reflect.StructField, _ []int, depth int) {
		indent := strings.Repeat("  ", depth)
		if docs && depth == 0 {
			b.WriteString("\n")
		}
		name := f.Tag.Get("yaml")
		if isSectionType(f.Type) {
			if docs {
				fmt.Fprintf(&b, "%s# %s\n", indent, f.Tag.Get("doc"))
			}
			fmt.Fprintf(&b, "%s%s:\n", indent, name)
			return
		}
		k, _ := lookupKey(path)
		if docs {
			fmt.Fprintf(&b, "%s# %s [%s]\n", indent, k.Doc, k.Env)
		}
		value := k.format(c)
		if k.Type.Kind() == reflect.String {
			value = strconv.Quote(value)
		}
		fmt.Fprintf(&b, "%s%s: %s\n", indent, name, value)
	})
	return b.String()
}
