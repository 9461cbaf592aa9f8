package wire

// The browser's web/static/js/protocol.js is hand-written (JSDoc typedefs that tsc
// checks the apps against). These tests hold it to this package: the same message
// types in each direction, a typedef per payload struct with the same JSON field
// names and optionality (and null where Go sends a nil pointer), and a payload for
// every message type.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const protocolJS = "../web/static/js/protocol.js"

// serverAlsoSends are the client → server types the server sends too (it trickles its
// own ICE candidates and announces mutes), so they belong in the JS server table.
var serverAlsoSends = []string{TypeICECandidate, TypeMute}

// goTypes returns the message types declared in wire.go, by direction: the const
// blocks whose doc comment starts "Client → server" and "Server → client".
func goTypes(t *testing.T) (client, server []string) {
	t.Helper()
	f := parseWire(t)
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST || g.Doc == nil {
			continue
		}
		var dst *[]string
		switch doc := g.Doc.Text(); {
		case strings.HasPrefix(doc, "Client → server"):
			dst = &client
		case strings.HasPrefix(doc, "Server → client"):
			dst = &server
		default:
			continue
		}
		for _, s := range g.Specs {
			for _, v := range s.(*ast.ValueSpec).Values {
				val, err := strconv.Unquote(v.(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				*dst = append(*dst, val)
			}
		}
	}
	if len(client) == 0 || len(server) == 0 {
		t.Fatal("wire.go: no message type blocks found (their doc comments changed?)")
	}
	return client, server
}

func parseWire(t *testing.T) *ast.File {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "wire.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readJS(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(protocolJS)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jsTable returns the values of `export const NAME = Object.freeze({ key: 'value', … })`
// and checks each key is the value in camelCase.
func jsTable(t *testing.T, js, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)export const ` + name + ` = Object\.freeze\(\{(.*?)\}\);`).FindStringSubmatch(js)
	if m == nil {
		t.Fatalf("protocol.js: no `export const %s = Object.freeze({...});`", name)
	}
	var vals []string
	for _, kv := range regexp.MustCompile(`(\w+):\s*'([a-z_]+)'`).FindAllStringSubmatch(m[1], -1) {
		if want := camel(kv[2]); kv[1] != want {
			t.Errorf("protocol.js %s.%s: key for %q should be %s", name, kv[1], kv[2], want)
		}
		vals = append(vals, kv[2])
	}
	return vals
}

func camel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

// sameSet reports the differences between Go's and JS's lists, both ways.
func sameSet(t *testing.T, what string, goList, jsList []string) {
	t.Helper()
	for _, v := range goList {
		if !slices.Contains(jsList, v) {
			t.Errorf("%s: %q is in Go (package wire) but missing from protocol.js", what, v)
		}
	}
	for _, v := range jsList {
		if !slices.Contains(goList, v) {
			t.Errorf("%s: %q is in protocol.js but not in Go (package wire)", what, v)
		}
	}
	seen := map[string]bool{}
	for _, v := range jsList {
		if seen[v] {
			t.Errorf("%s: %q twice in protocol.js", what, v)
		}
		seen[v] = true
	}
}

func TestProtocolJSMessageTypes(t *testing.T) {
	client, server := goTypes(t)
	js := readJS(t)
	sameSet(t, "client → server types (C)", client, jsTable(t, js, "C"))
	sameSet(t, "server → client types (S)", append(server, serverAlsoSends...), jsTable(t, js, "S"))
}

// jsProp is one @property of a JSDoc typedef (or a Go struct field, with Nullable:
// a pointer that is sent as null).
type jsProp struct {
	Name     string
	Type     string
	Optional bool
	Nullable bool
}

// jsTypedefs parses every `@typedef {TYPE} Name` in protocol.js with the
// `@property {type} name` or `[name]` lines that follow it.
func jsTypedefs(js string) map[string][]jsProp {
	defs := map[string][]jsProp{}
	typedef := regexp.MustCompile(`^\*\s*@typedef\s+\{(.*)\}\s+(\w+)`)
	prop := regexp.MustCompile(`^\*\s*@property\s+\{(.*?)\}\s+(\[\w+\]|\w+)`)
	cur := ""
	for _, line := range strings.Split(js, "\n") {
		line = strings.TrimSpace(line)
		if m := typedef.FindStringSubmatch(line); m != nil {
			cur = m[2]
			defs[cur] = []jsProp{}
			continue
		}
		if !strings.HasPrefix(line, "*") || strings.HasPrefix(line, "*/") {
			cur = ""
			continue
		}
		if m := prop.FindStringSubmatch(line); m != nil && cur != "" {
			name, opt := m[2], false
			if strings.HasPrefix(name, "[") {
				name, opt = strings.Trim(name, "[]"), true
			}
			defs[cur] = append(defs[cur], jsProp{Name: name, Type: m[1], Optional: opt})
		}
	}
	return defs
}

// goStructs returns each struct of wire.go as its JSON properties.
func goStructs(t *testing.T) map[string][]jsProp {
	t.Helper()
	out := map[string][]jsProp{}
	for _, d := range parseWire(t).Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.TYPE {
			continue
		}
		for _, s := range g.Specs {
			ts := s.(*ast.TypeSpec)
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			props := []jsProp{}
			for _, f := range st.Fields.List {
				if f.Tag == nil || len(f.Names) != 1 {
					t.Fatalf("wire.go %s: every field needs its own name and a json tag", ts.Name.Name)
				}
				tag, _ := strconv.Unquote(f.Tag.Value)
				name, opts, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
				if name == "" || name == "-" {
					t.Fatalf("wire.go %s.%s: json tag needs a name", ts.Name.Name, f.Names[0].Name)
				}
				omit := slices.Contains(strings.Split(opts, ","), "omitempty")
				_, ptr := f.Type.(*ast.StarExpr)
				props = append(props, jsProp{Name: name, Optional: omit, Nullable: ptr && !omit})
			}
			out[ts.Name.Name] = props
		}
	}
	return out
}

func TestProtocolJSTypedefs(t *testing.T) {
	structs := goStructs(t)
	defs := jsTypedefs(readJS(t))
	for _, name := range slices.Sorted(maps.Keys(structs)) {
		props := structs[name]
		jsProps, ok := defs[name]
		if !ok {
			t.Errorf("protocol.js: no @typedef %s (Go struct wire.%s)", name, name)
			continue
		}
		for _, p := range props {
			i := slices.IndexFunc(jsProps, func(j jsProp) bool { return j.Name == p.Name })
			switch {
			case i < 0:
				t.Errorf("protocol.js %s: no @property %s (Go wire.%s)", name, p.Name, name)
			case jsProps[i].Optional != p.Optional:
				t.Errorf("protocol.js %s.%s: optional is %v, Go has omitempty %v", name, p.Name, jsProps[i].Optional, p.Optional)
			case p.Nullable && !strings.Contains(jsProps[i].Type, "null"):
				t.Errorf("protocol.js %s.%s: {%s} lacks null (Go sends a nil pointer as null)", name, p.Name, jsProps[i].Type)
			}
		}
		for _, j := range jsProps {
			if !slices.ContainsFunc(props, func(p jsProp) bool { return p.Name == j.Name }) {
				t.Errorf("protocol.js %s: @property %s is not a field of Go wire.%s", name, j.Name, name)
			}
		}
	}
	// Object typedefs other than the payload tables must be Go structs.
	js := readJS(t)
	for _, m := range regexp.MustCompile(`@typedef\s+\{Object\}\s+(\w+)`).FindAllStringSubmatch(js, -1) {
		if _, ok := structs[m[1]]; !ok && m[1] != "ClientPayloads" && m[1] != "ServerPayloads" {
			t.Errorf("protocol.js: @typedef {Object} %s has no Go struct in package wire", m[1])
		}
	}
}

// TestProtocolJSPayloadTables checks ClientPayloads and ServerPayloads name a payload
// typedef for exactly the message types of their direction.
func TestProtocolJSPayloadTables(t *testing.T) {
	client, server := goTypes(t)
	defs := jsTypedefs(readJS(t))
	structs := goStructs(t)
	for _, tc := range []struct {
		table string
		types []string
	}{{"ClientPayloads", client}, {"ServerPayloads", append(server, serverAlsoSends...)}} {
		props, ok := defs[tc.table]
		if !ok {
			t.Errorf("protocol.js: no @typedef %s", tc.table)
			continue
		}
		var keys []string
		for _, p := range props {
			keys = append(keys, p.Name)
			if p.Optional {
				t.Errorf("protocol.js %s.%s: a message type's payload is not optional", tc.table, p.Name)
			}
			if _, ok := structs[p.Type]; !ok {
				t.Errorf("protocol.js %s.%s: payload {%s} is not a Go struct of package wire", tc.table, p.Name, p.Type)
			}
		}
		sameSet(t, tc.table, tc.types, keys)
	}
}
