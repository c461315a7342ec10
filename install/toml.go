package install

// Text-preserving edits of TOML files (containerd's config.toml, Podman's
// containers.conf). These files are the admin's: comments, order, quoting and
// indentation are theirs, and a parse-and-marshal round trip would throw all
// of it away. So the file is edited as lines: a key is replaced in place, a
// missing key is inserted into its table, a missing table is appended as one
// block, and each edit is recorded so uninstall can take out exactly that.
// go-toml is the judge: the input must parse, and the output must parse and
// hold the values asked for, or nothing is written.

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// tomlMarker heads every block install appends.
const tomlMarker = "# Added by `sysbox install`; `sysbox uninstall` removes it."

// tomlEdit is one change install made to a TOML file.
type tomlEdit struct {
	// Table is the table the edit is in (for a block: its first table).
	Table []string `json:"table"`
	// Old is the line New replaced; empty when New was inserted.
	Old string `json:"old,omitempty"`
	// New is the replacing or inserted line, or the appended block.
	New   string `json:"new"`
	Block bool   `json:"block,omitempty"`
}

// tomlKV is a key and its value, already written as TOML.
type tomlKV struct{ key, value string }

// tomlTableEdit asks for keys to hold values in one table.
type tomlTableEdit struct {
	table []string
	kvs   []tomlKV
}

// tomlLine is what the scanner knows of one line.
type tomlLine struct {
	text string
	// header is the table path of a [table] line; array says [[table]].
	header []string
	array  bool
	// key is the key path of a line that starts a key/value statement;
	// end is the index of the statement's last line (values can span lines).
	key []string
	end int
}

// scanTOML cuts src into lines and marks headers and statement starts,
// following strings, multi-line strings and nested arrays so that a '[' in
// a value is never taken for a header.
func scanTOML(src string) ([]tomlLine, error) {
	texts := splitLines(src)
	lines := make([]tomlLine, len(texts))
	var st tomlLexState
	stmt := -1
	for i, t := range texts {
		lines[i].text = t
		if st.top() {
			body := strings.TrimLeft(t, " \t")
			switch {
			case strings.HasPrefix(body, "["):
				path, array, err := parseTOMLHeader(body)
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", i+1, err)
				}
				lines[i].header, lines[i].array = path, array
				continue
			case body == "" || body[0] == '#' || body[0] == '\n' || body[0] == '\r':
				continue
			default:
				key, _, err := parseTOMLKey(body)
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", i+1, err)
				}
				lines[i].key = key
				stmt = i
			}
		}
		st.feed(t)
		if stmt >= 0 && st.top() {
			lines[stmt].end = i
			stmt = -1
		}
	}
	if stmt >= 0 {
		lines[stmt].end = len(lines) - 1
	}
	return lines, nil
}

// tomlLexState is where a line leaves the lexer: inside a multi-line string,
// or inside brackets of a value.
type tomlLexState struct {
	mlBasic, mlLiteral bool
	depth              int
}

func (s *tomlLexState) top() bool { return !s.mlBasic && !s.mlLiteral && s.depth == 0 }

func (s *tomlLexState) feed(line string) {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case s.mlBasic:
			if c == '\\' {
				i++
			} else if strings.HasPrefix(line[i:], `"""`) {
				s.mlBasic = false
				i += 2
				for i+1 < len(line) && line[i+1] == '"' { // """" and """"" close with quotes in the string
					i++
				}
			}
		case s.mlLiteral:
			if strings.HasPrefix(line[i:], `'''`) {
				s.mlLiteral = false
				i += 2
				for i+1 < len(line) && line[i+1] == '\'' {
					i++
				}
			}
		case c == '#':
			return
		case strings.HasPrefix(line[i:], `"""`):
			s.mlBasic = true
			i += 2
		case strings.HasPrefix(line[i:], `'''`):
			s.mlLiteral = true
			i += 2
		case c == '"':
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' {
					i++
				}
			}
		case c == '\'':
			for i++; i < len(line) && line[i] != '\''; i++ {
			}
		case c == '[' || c == '{':
			s.depth++
		case c == ']' || c == '}':
			if s.depth > 0 {
				s.depth--
			}
		}
	}
}

// parseTOMLHeader reads "[a.b]" or "[[a.b]]" (with anything after it).
func parseTOMLHeader(s string) (path []string, array bool, err error) {
	s = strings.TrimPrefix(s, "[")
	if strings.HasPrefix(s, "[") {
		array = true
		s = s[1:]
	}
	path, rest, err := parseTOMLKeyPath(s)
	if err != nil {
		return nil, false, err
	}
	closing := "]"
	if array {
		closing = "]]"
	}
	if !strings.HasPrefix(strings.TrimLeft(rest, " \t"), closing) {
		return nil, false, errors.New("table header: missing " + closing)
	}
	return path, array, nil
}

// parseTOMLKey reads the key of a "key = value" line.
func parseTOMLKey(s string) ([]string, string, error) {
	path, rest, err := parseTOMLKeyPath(s)
	if err != nil {
		return nil, "", err
	}
	rest = strings.TrimLeft(rest, " \t")
	if !strings.HasPrefix(rest, "=") {
		return nil, "", fmt.Errorf("expected '=' after key %s", strings.Join(path, "."))
	}
	return path, rest[1:], nil
}

// parseTOMLKeyPath reads a dotted key: bare, "basic" or 'literal' parts.
func parseTOMLKeyPath(s string) ([]string, string, error) {
	var path []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", errors.New("unexpected end of line in key")
		}
		var part string
		switch s[0] {
		case '"':
			end := 1
			var sb strings.Builder
			for ; end < len(s) && s[end] != '"'; end++ {
				if s[end] == '\\' && end+1 < len(s) {
					end++
					switch s[end] {
					case 'n':
						sb.WriteByte('\n')
					case 't':
						sb.WriteByte('\t')
					default:
						// \uXXXX and friends do not occur in the keys we look
						// for; keep them verbatim so they simply never match.
						sb.WriteByte('\\')
						sb.WriteByte(s[end])
					}
					continue
				}
				sb.WriteByte(s[end])
			}
			if end == len(s) {
				return nil, "", errors.New("unterminated quoted key")
			}
			part, s = sb.String(), s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", errors.New("unterminated quoted key")
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := 0
			for end < len(s) && isBareKeyChar(s[end]) {
				end++
			}
			if end == 0 {
				return nil, "", fmt.Errorf("unexpected %q in key", s[0])
			}
			part, s = s[:end], s[end:]
		}
		path = append(path, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return path, s, nil
		}
		s = s[1:]
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// tomlKeyText writes a key part bare when it can be, quoted otherwise.
func tomlKeyText(part string) string {
	bare := part != ""
	for i := 0; i < len(part); i++ {
		bare = bare && isBareKeyChar(part[i])
	}
	if bare {
		return part
	}
	return tomlQuote(part)
}

func tomlHeaderText(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = tomlKeyText(p)
	}
	return "[" + strings.Join(parts, ".") + "]"
}

// tomlQuote writes s as a TOML basic string.
func tomlQuote(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&sb, `\u%04X`, r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// tomlTableRange finds the one [table] header with this path: the index of
// the header and the end (exclusive) of its body. Not found: -1.
func tomlTableRange(lines []tomlLine, table []string) (start, end int) {
	start = -1
	for i, l := range lines {
		if l.header == nil {
			continue
		}
		if start >= 0 {
			return start, i
		}
		if !l.array && slices.Equal(l.header, table) {
			start = i
		}
	}
	if start < 0 {
		return -1, -1
	}
	return start, len(lines)
}

// tomlKeyLine finds the statement setting key in the body lines[from:to].
func tomlKeyLine(lines []tomlLine, from, to int, key string) int {
	for i := from; i < to; i++ {
		if len(lines[i].key) == 1 && lines[i].key[0] == key {
			return i
		}
	}
	return -1
}

func parseTOMLDoc(src []byte, name string) (map[string]any, error) {
	doc := map[string]any{}
	if err := toml.Unmarshal(src, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%s: invalid TOML at line %d, column %d: %v", name, row, col, de)
		}
		return nil, fmt.Errorf("%s: invalid TOML: %w", name, err)
	}
	return doc, nil
}

// tomlGet follows a table path through a parsed document.
func tomlGet(doc map[string]any, path ...string) (any, bool) {
	var cur any = doc
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// setTOMLKeys makes each table hold its keys with the given values, editing
// src as text. Keys already holding the exact line wanted are left alone.
func setTOMLKeys(src string, tables []tomlTableEdit) (string, []tomlEdit, error) {
	lines, err := scanTOML(src)
	if err != nil {
		return "", nil, err
	}
	var edits []tomlEdit
	var missing []tomlTableEdit
	type insert struct {
		at   int // insert before this line
		text string
	}
	var inserts []insert
	for _, te := range tables {
		start, end := tomlTableRange(lines, te.table)
		if start < 0 {
			missing = append(missing, te)
			continue
		}
		indent := leadingSpace(lines[start].text) + "  "
		after := start + 1 // just past the last statement of the table
		for i := start + 1; i < end; i++ {
			if lines[i].key != nil {
				indent = leadingSpace(lines[i].text)
				after = lines[i].end + 1
			}
		}
		for _, kv := range te.kvs {
			want := indent + tomlKeyText(kv.key) + " = " + kv.value + "\n"
			if i := tomlKeyLine(lines, start+1, end, kv.key); i >= 0 {
				if lines[i].end != i {
					return "", nil, fmt.Errorf("%s.%s spans several lines: set it to %s by hand",
						strings.Join(te.table, "."), kv.key, kv.value)
				}
				want = leadingSpace(lines[i].text) + tomlKeyText(kv.key) + " = " + kv.value + lineEnding(lines[i].text)
				if lines[i].text == want {
					continue
				}
				edits = append(edits, tomlEdit{Table: te.table, Old: lines[i].text, New: want})
				lines[i].text = want
				continue
			}
			inserts = append(inserts, insert{after, want})
			edits = append(edits, tomlEdit{Table: te.table, New: want})
		}
	}
	// Inserts go in from the bottom so earlier indexes stay right.
	slices.SortStableFunc(inserts, func(a, b insert) int { return b.at - a.at })
	texts := make([]string, len(lines))
	for i, l := range lines {
		texts[i] = l.text
	}
	for _, in := range inserts {
		if in.at > 0 && !strings.HasSuffix(texts[in.at-1], "\n") {
			texts[in.at-1] += "\n"
		}
		texts = slices.Insert(texts, in.at, in.text)
	}
	out := strings.Join(texts, "")
	if len(missing) > 0 {
		var block strings.Builder
		// The separating newlines belong to the block, so taking the block
		// out gives back the file's own last line as it was.
		if out != "" {
			if !strings.HasSuffix(out, "\n") {
				block.WriteString("\n")
			}
			if !strings.HasSuffix(out+block.String(), "\n\n") {
				block.WriteString("\n")
			}
		}
		block.WriteString(tomlMarker + "\n")
		for _, te := range missing {
			block.WriteString(tomlHeaderText(te.table) + "\n")
			for _, kv := range te.kvs {
				block.WriteString("  " + tomlKeyText(kv.key) + " = " + kv.value + "\n")
			}
		}
		out += block.String()
		edits = append(edits, tomlEdit{Table: missing[0].table, New: block.String(), Block: true})
	}
	return out, edits, nil
}

// unsetTOMLEdits takes out what setTOMLKeys put in, in reverse order, and
// leaves whatever else changed since. An edit whose text is no longer there
// (the admin changed or removed it) is left as the admin has it.
func unsetTOMLEdits(src string, edits []tomlEdit) (string, error) {
	out := src
	for i := len(edits) - 1; i >= 0; i-- {
		e := edits[i]
		var err error
		switch {
		case e.Block:
			if j := strings.LastIndex(out, e.New); j >= 0 {
				out = out[:j] + out[j+len(e.New):]
				continue
			}
			out, err = unsetTOMLBlock(out, e.New)
		default:
			out, err = replaceTOMLLine(out, e.Table, e.New, e.Old)
		}
		if err != nil {
			return "", err
		}
	}
	return out, nil
}

// replaceTOMLLine swaps the line old (in the table) for repl; an empty repl
// deletes it.
func replaceTOMLLine(src string, table []string, old, repl string) (string, error) {
	lines, err := scanTOML(src)
	if err != nil {
		return "", err
	}
	start, end := tomlTableRange(lines, table)
	if start < 0 {
		return src, nil
	}
	for i := start + 1; i < end; i++ {
		if lines[i].text == old || lines[i].text+"\n" == old {
			texts := make([]string, len(lines))
			for j, l := range lines {
				texts[j] = l.text
			}
			texts[i] = repl
			return strings.Join(texts, ""), nil
		}
	}
	return src, nil
}

// unsetTOMLBlock takes out an appended block the admin has edited inside:
// our key lines go; a table header goes when nothing but blank lines and
// comments is left under it; the marker goes.
func unsetTOMLBlock(src, block string) (string, error) {
	blines, err := scanTOML(block)
	if err != nil {
		return "", err
	}
	var table []string
	for _, bl := range blines {
		switch {
		case bl.header != nil:
			table = bl.header
		case bl.key != nil && table != nil:
			if src, err = replaceTOMLLine(src, table, bl.text, ""); err != nil {
				return "", err
			}
		}
	}
	for _, bl := range blines {
		if bl.header == nil {
			continue
		}
		lines, err := scanTOML(src)
		if err != nil {
			return "", err
		}
		start, end := tomlTableRange(lines, bl.header)
		if start < 0 {
			continue
		}
		empty := true
		for i := start + 1; i < end; i++ {
			if lines[i].key != nil {
				empty = false
			}
		}
		if !empty {
			continue
		}
		// Drop the header and the blank lines under it; keep comments,
		// which may belong to the next table.
		texts := make([]string, 0, len(lines))
		for i, l := range lines {
			if i == start || (i > start && i < end && strings.TrimSpace(l.text) == "") {
				continue
			}
			texts = append(texts, l.text)
		}
		src = strings.Join(texts, "")
	}
	if j := strings.LastIndex(src, tomlMarker+"\n"); j >= 0 {
		src = src[:j] + src[j+len(tomlMarker)+1:]
	}
	return src, nil
}

func leadingSpace(s string) string {
	return s[:len(s)-len(strings.TrimLeft(s, " \t"))]
}

func lineEnding(s string) string {
	if strings.HasSuffix(s, "\r\n") {
		return "\r\n"
	}
	return "\n"
}
