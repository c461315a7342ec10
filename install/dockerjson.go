package install

// Docker's daemon.json is edited as a generic JSON object: every key install
// does not own is carried through untouched. Unlike a map[string]any round
// trip, jsonObject keeps the admin's key order and each value's exact bytes
// (big numbers stay exact, nested objects keep their key order).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// jsonObject is a JSON object with its keys in file order and its values as
// they were written.
type jsonObject struct {
	keys []string
	vals map[string]json.RawMessage
}

func newJSONObject() *jsonObject { return &jsonObject{vals: map[string]json.RawMessage{}} }

func (o *jsonObject) get(k string) (json.RawMessage, bool) {
	v, ok := o.vals[k]
	return v, ok
}

func (o *jsonObject) set(k string, v json.RawMessage) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *jsonObject) del(k string) {
	if _, ok := o.vals[k]; !ok {
		return
	}
	delete(o.vals, k)
	for i, kk := range o.keys {
		if kk == k {
			o.keys = append(o.keys[:i], o.keys[i+1:]...)
			break
		}
	}
}

// parseJSONObject reads a JSON object. An empty (or blank) input is an empty
// object: Docker accepts an empty daemon.json too.
func parseJSONObject(src []byte, name string) (*jsonObject, error) {
	if len(bytes.TrimSpace(src)) == 0 {
		return newJSONObject(), nil
	}
	// A full decode first, for an error with a position in it.
	var whole any
	if err := json.Unmarshal(src, &whole); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			if se.Offset >= int64(len(src)) {
				// encoding/json words a cut-short input oddly.
				line, col := lineCol(src, int64(len(src))+1)
				return nil, fmt.Errorf("%s: invalid JSON at line %d, column %d: unexpected end of input", name, line, col)
			}
			line, col := lineCol(src, se.Offset)
			return nil, fmt.Errorf("%s: invalid JSON at line %d, column %d: %v", name, line, col, se)
		}
		return nil, fmt.Errorf("%s: invalid JSON: %w", name, err)
	}
	if _, ok := whole.(map[string]any); !ok {
		return nil, fmt.Errorf("%s: must hold a JSON object, not %s", name, jsonKind(whole))
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	if _, err := dec.Token(); err != nil { // the '{'
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	o := newJSONObject()
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		o.set(t.(string), v) // a repeated key: the last value wins, as in Docker
	}
	return o, nil
}

// marshal writes the object with two-space indentation, Docker's own style.
func (o *jsonObject) marshal() []byte {
	if len(o.keys) == 0 {
		return []byte("{}\n")
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, k := range o.keys {
		kb, _ := json.Marshal(k)
		b.WriteString("  ")
		b.Write(kb)
		b.WriteString(": ")
		if err := json.Indent(&b, o.vals[k], "  ", "  "); err != nil {
			b.Write(o.vals[k]) // parsed before, so this does not happen
		}
		if i < len(o.keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// lineCol turns the offset encoding/json reports (bytes read when the error
// was seen) into the 1-based line and column of the offending byte.
func lineCol(src []byte, offset int64) (line, col int) {
	at := int(offset) - 1
	if at < 0 {
		at = 0
	}
	if at > len(src) {
		at = len(src)
	}
	line = 1 + bytes.Count(src[:at], []byte("\n"))
	col = at - bytes.LastIndexByte(src[:at], '\n')
	return line, col
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func jsonEqual(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// jsonChange is one value install set in a JSON file.
type jsonChange struct {
	// Path is the key, and for a nested key its parent first.
	Path []string `json:"path"`
	// Old is the value it replaced; absent when the key was new.
	Old json.RawMessage `json:"old,omitempty"`
	New json.RawMessage `json:"new"`
	// CreatedParent: the parent object did not exist and install made it.
	CreatedParent bool `json:"createdParent,omitempty"`
}

// dockerWant is what install puts into daemon.json.
type dockerWant struct {
	RuntimePath    string
	DefaultRuntime bool
}

const runtimeName = "sysbox-runc"

// mergeDaemonJSON adds sysbox's runtime (and, when asked, makes it the
// default) to daemon.json's content. No changes needed: src comes back as
// it is with no changes listed.
func mergeDaemonJSON(src []byte, name string, want dockerWant) ([]byte, []jsonChange, error) {
	top, err := parseJSONObject(src, name)
	if err != nil {
		return nil, nil, err
	}
	var changes []jsonChange
	entry, _ := json.Marshal(map[string]string{"path": want.RuntimePath})

	runtimes := newJSONObject()
	rawRuntimes, hadRuntimes := top.get("runtimes")
	if hadRuntimes {
		if runtimes, err = parseJSONObject(rawRuntimes, name+": \"runtimes\""); err != nil {
			return nil, nil, err
		}
	}
	if old, ok := runtimes.get(runtimeName); !ok || !jsonEqual(old, entry) {
		// An entry with another path (an older install elsewhere) is
		// replaced whole and comes back at uninstall.
		changes = append(changes, jsonChange{Path: []string{"runtimes", runtimeName}, Old: old, New: entry, CreatedParent: !hadRuntimes})
		runtimes.set(runtimeName, entry)
		top.set("runtimes", compact(runtimes.marshal()))
	}
	if want.DefaultRuntime {
		def, _ := json.Marshal(runtimeName)
		if old, ok := top.get("default-runtime"); !ok || !jsonEqual(old, def) {
			changes = append(changes, jsonChange{Path: []string{"default-runtime"}, Old: old, New: def})
			top.set("default-runtime", def)
		}
	}
	if len(changes) == 0 {
		return src, nil, nil
	}
	return top.marshal(), changes, nil
}

// unmergeJSON undoes changes on a JSON file's current content: a value still
// as install set it goes back to what it was; a value the admin changed
// since stays theirs. empty reports that nothing is left in the object.
func unmergeJSON(src []byte, name string, changes []jsonChange) (out []byte, empty bool, err error) {
	top, err := parseJSONObject(src, name)
	if err != nil {
		return nil, false, err
	}
	changed := false
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		switch len(c.Path) {
		case 1:
			if cur, ok := top.get(c.Path[0]); ok && jsonEqual(cur, c.New) {
				restore(top, c.Path[0], c.Old)
				changed = true
			}
		case 2:
			rawParent, ok := top.get(c.Path[0])
			if !ok {
				continue
			}
			parent, err := parseJSONObject(rawParent, name+": \""+c.Path[0]+"\"")
			if err != nil {
				continue // the admin made it something else: theirs now
			}
			cur, ok := parent.get(c.Path[1])
			if !ok || !jsonEqual(cur, c.New) {
				continue
			}
			restore(parent, c.Path[1], c.Old)
			changed = true
			if c.CreatedParent && len(parent.keys) == 0 {
				top.del(c.Path[0])
			} else {
				top.set(c.Path[0], compact(parent.marshal()))
			}
		default:
			return nil, false, fmt.Errorf("%s: recorded change at unsupported path %v", name, c.Path)
		}
	}
	if !changed {
		return src, len(top.keys) == 0, nil
	}
	return top.marshal(), len(top.keys) == 0, nil
}

func restore(o *jsonObject, key string, old json.RawMessage) {
	if old == nil {
		o.del(key)
	} else {
		o.set(key, old)
	}
}

func compact(b []byte) json.RawMessage {
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		return b
	}
	return c.Bytes()
}
