package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EnvPrefix starts every environment variable Lading reads.
const EnvPrefix = "LADING_"

// key is one settable leaf of Config, found by reflection so that the file,
// the environment, the flags, validation messages and Example all agree on
// its name.
type key struct {
	Path   string // "storage.s3.accesskey"
	Env    string // "LADING_STORAGE_S3_ACCESSKEY"
	Doc    string
	Index  []int // field index path from Config
	Type   reflect.Type
	Secret bool
}

// section is a struct-valued field: its keys nest below it.
type section struct {
	Path string
	Doc  string
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
	bytesType    = reflect.TypeFor[Bytes]()
)

// isSectionType tells nested sections from leaf settings.
func isSectionType(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != durationType
}

// walkFields calls fn for every field of Config in declaration order, a
// section before its contents, with its dotted path and nesting depth.
func walkFields(fn func(path string, f reflect.StructField, index []int, depth int)) {
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			path := f.Tag.Get("yaml")
			if prefix != "" {
				path = prefix + "." + path
			}
			idx := append(append([]int(nil), index...), i)
			fn(path, f, idx, len(index))
			if isSectionType(f.Type) {
				walk(f.Type, path, idx)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
}

// schema lists every key and section of Config in declaration order.
var schema = sync.OnceValues(func() ([]key, []section) {
	var keys []key
	var sections []section
	walkFields(func(path string, f reflect.StructField, index []int, _ int) {
		if isSectionType(f.Type) {
			sections = append(sections, section{Path: path, Doc: f.Tag.Get("doc")})
			return
		}
		keys = append(keys, key{
			Path:   path,
			Env:    EnvName(path),
			Doc:    f.Tag.Get("doc"),
			Index:  index,
			Type:   f.Type,
			Secret: f.Type == secretType,
		})
	})
	return keys, sections
})

// Keys returns the path of every setting, e.g. "http.addr", in the order
// they are declared.
func Keys() []string {
	keys, _ := schema()
	paths := make([]string, len(keys))
	for i, k := range keys {
		paths[i] = k.Path
	}
	return paths
}

// EnvName is the environment variable overriding the key at path.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

func lookupKey(path string) (key, bool) {
	keys, _ := schema()
	for _, k := range keys {
		if k.Path == path {
			return k, true
		}
	}
	return key{}, false
}

// field is the settable value of k inside c.
func (k key) field(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(k.Index)
}

// set parses text as k's type and stores it in c. File, environment and
// flags all come through here, so a value means the same wherever it is
// written. The message never repeats a secret's text. A list is read by
// the loader (setList), which knows where each of its items came from.
func (k key) set(c *Config, text string) error {
	return setScalar(k.field(c), text)
}

// ParseDuration reads a Go duration (90m, 24h) or whole days (30d), the
// unit grace periods and retention are thought in.
func ParseDuration(text string) (time.Duration, error) {
	days, ok := strings.CutSuffix(text, "d")
	if !ok {
		return time.ParseDuration(text)
	}
	n, err := strconv.ParseInt(days, 10, 32)
	if err == nil && (n > 100_000 || n < -100_000) {
		err = strconv.ErrRange // a time.Duration holds 292 years
	}
	return time.Duration(n) * 24 * time.Hour, err
}

// setScalar parses text as v's type and stores it in v.
func setScalar(v reflect.Value, text string) error {
	t := v.Type()
	switch {
	case t == durationType:
		d, err := ParseDuration(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("%q is not a duration (write e.g. 30s, 5m, 24h, 7d)", text)
		}
		v.SetInt(int64(d))
	case t == bytesType:
		b, err := parseBytes(text)
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
	case t.Kind() == reflect.String:
		v.SetString(text)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("%q is not true or false", text)
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", text)
		}
		v.SetInt(n)
	case t.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a number", text)
		}
		v.SetFloat(f)
	default:
		// Only reachable by adding a field of a new kind; the schema test
		// catches it before any user can.
		return fmt.Errorf("settings of type %s are not supported", t)
	}
	return nil
}

// format writes k's value in c the way set reads it back.
func (k key) format(c *Config) string {
	v := k.field(c)
	switch {
	case k.Secret:
		return Secret(v.String()).String()
	case k.Type == durationType:
		return formatDuration(time.Duration(v.Int()))
	case k.Type == bytesType:
		return Bytes(v.Int()).String()
	case k.Type.Kind() == reflect.String:
		return v.String()
	case k.Type.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case k.isList():
		return formatList(v)
	default:
		return fmt.Sprint(v.Interface())
	}
}

// formatDuration drops the zero tails of time.Duration.String ("24h0m0s"
// becomes "24h") so printed files read as a person would write them.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
