package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lading-registry/lading/internal/yamldoc"
)

// A list setting (notifications.endpoints) holds items with keys of their
// own. It is read as strictly as the rest: every key of an item must be
// one the item declares, and each problem names its item and line, e.g.
// notifications.endpoints[1].timeout. In the environment and in --set its
// value is the whole list, written in YAML.

// listExamples show each list setting's one-line form.
var listExamples = map[string]string{
	"notifications.endpoints": "[{name: scan, url: https://scan.example/events}]",
	"retention.rules":         `[{repository: "ci/**", keep: 10}]`,
	"quotas":                  `[{repository: "team-a/**", limit: 500GiB}]`,
}

// isList reports whether k holds a list of items rather than one value.
func (k key) isList() bool {
	return k.Type.Kind() == reflect.Slice
}

// setListText reads text, the YAML of a whole list, as k's value.
func (l *loader) setListText(k key, text, source string) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		// yaml's message names the line and the problem, never a value.
		l.fail(k.Path, source, "is not a YAML list (%v); write e.g. %s", err, listExamples[k.Path])
		return
	}
	if yamldoc.Empty(&doc) {
		l.setList(k, &yaml.Node{Kind: yaml.SequenceNode}, func(*yaml.Node) string { return source })
		return
	}
	l.setList(k, doc.Content[0], func(*yaml.Node) string { return source })
}

// setList replaces k's list with the one n holds. An item's value that
// does not read leaves the item's default, so that validation still finds
// the item's other problems without reporting that one twice.
func (l *loader) setList(k key, n *yaml.Node, where func(*yaml.Node) string) {
	v := reflect.New(k.Type).Elem()
	origin := map[string]string{}
	l.decode(n, v, k.Path, where, origin)
	if v.Len() == 0 {
		v = reflect.Zero(k.Type) // as in Default, so [] and nothing set compare equal
	}
	k.field(l.cfg).Set(v)
	// The origins of the list before this one go with it.
	maps.DeleteFunc(l.origin, func(p, _ string) bool { return strings.HasPrefix(p, k.Path+"[") })
	maps.Copy(l.origin, origin)
	l.origin[k.Path] = where(n)
}

// decode fills v from n: a struct from a mapping of its yaml names, a list
// from a sequence (or, for a list of plain values, from one value), a map
// from a mapping, anything else as setScalar reads it.
func (l *loader) decode(n *yaml.Node, v reflect.Value, path string, where func(*yaml.Node) string, origin map[string]string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return // as in the file's sections: the default stays
	}
	t := v.Type()
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.ScalarNode && !isSectionType(t.Elem()):
		item := reflect.New(t.Elem()).Elem()
		if l.decodeScalar(n, item, path+"[0]", where, origin) {
			v.Set(reflect.Append(reflect.MakeSlice(t, 0, 1), item))
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			l.fail(path, where(n), "must be a list")
			return
		}
		s := reflect.MakeSlice(t, 0, len(n.Content))
		for i, in := range n.Content {
			item := reflect.New(t.Elem())
			if d, ok := item.Interface().(interface{ setDefaults() }); ok {
				d.setDefaults()
			}
			l.decode(in, item.Elem(), fmt.Sprintf("%s[%d]", path, i), where, origin)
			s = reflect.Append(s, item.Elem())
		}
		v.Set(s)
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			l.fail(path, where(n), "must be a mapping")
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			name := reflect.ValueOf(kn.Value).Convert(t.Key())
			if m.MapIndex(name).IsValid() {
				l.fail(path+"."+kn.Value, where(kn), "is set twice")
				continue
			}
			item := reflect.New(t.Elem()).Elem()
			l.decode(vn, item, path+"."+kn.Value, where, origin)
			m.SetMapIndex(name, item)
		}
		v.Set(m)
	case isSectionType(t):
		l.decodeStruct(n, v, path, where, origin)
	default:
		l.decodeScalar(n, v, path, where, origin)
	}
}

func (l *loader) decodeStruct(n *yaml.Node, v reflect.Value, path string, where func(*yaml.Node) string, origin map[string]string) {
	if n.Kind != yaml.MappingNode {
		l.fail(path, where(n), "must be a mapping of keys to values")
		return
	}
	t := v.Type()
	var names []string
	for i := range t.NumField() {
		names = append(names, t.Field(i).Tag.Get("yaml"))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		at := path + "." + kn.Value
		f := slices.Index(names, kn.Value)
		switch {
		case f < 0:
			l.fail(at, where(kn), "unknown key; allowed in %s: %s", path, strings.Join(names, ", "))
		case seen[kn.Value]:
			l.fail(at, where(kn), "is set twice")
		default:
			seen[kn.Value] = true
			l.decode(vn, v.Field(f), at, where, origin)
		}
	}
}

func (l *loader) decodeScalar(n *yaml.Node, v reflect.Value, path string, where func(*yaml.Node) string, origin map[string]string) bool {
	if n.Kind != yaml.ScalarNode {
		l.fail(path, where(n), "must be a single value, not a list or mapping")
		return false
	}
	if err := setScalar(v, n.Value); err != nil {
		if v.Type() == secretType {
			err = fmt.Errorf("cannot be read") // never repeats the value
		}
		l.fail(path, where(n), "%v", err)
		return false
	}
	origin[path] = where(n)
	return true
}

// formatList writes a list as one line of YAML that setListText and the
// file both read back, with secrets and passwords in URLs redacted.
func formatList(v reflect.Value) string {
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		return fmt.Sprintf("[] # %v", err) // unreachable with the types Config holds
	}
	flow(&n)
	out, err := yaml.Marshal(&n)
	if err != nil {
		return fmt.Sprintf("[] # %v", err)
	}
	return strings.TrimSpace(string(out))
}

func flow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	for _, c := range n.Content {
		flow(c)
	}
}
