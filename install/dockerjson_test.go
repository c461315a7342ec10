package install

import (
	"strings"
	"testing"
)

const ours = "/usr/local/bin/sysbox-runc"

func TestMergeDaemonJSON(t *testing.T) {
	tests := []struct {
		name string
		src  string
		def  bool
		want string // "" with no err: src comes back unchanged
		err  string
	}{
		{
			name: "missing file",
			src:  "",
			want: "{\n  \"runtimes\": {\n    \"sysbox-runc\": {\n      \"path\": \"/usr/local/bin/sysbox-runc\"\n    }\n  }\n}\n",
		},
		{
			name: "blank file",
			src:  " \n\n",
			want: "{\n  \"runtimes\": {\n    \"sysbox-runc\": {\n      \"path\": \"/usr/local/bin/sysbox-runc\"\n    }\n  }\n}\n",
		},
		{
			name: "empty object",
			src:  "{}",
			want: "{\n  \"runtimes\": {\n    \"sysbox-runc\": {\n      \"path\": \"/usr/local/bin/sysbox-runc\"\n    }\n  }\n}\n",
		},
		{
			name: "other keys keep their order and exact values",
			src:  `{"log-level":"warn","max-concurrent-downloads":12345678901234567890,"registry-mirrors":["https://m.example"],"features":{"z":true,"a":false}}`,
			want: `{
  "log-level": "warn",
  "max-concurrent-downloads": 12345678901234567890,
  "registry-mirrors": [
    "https://m.example"
  ],
  "features": {
    "z": true,
    "a": false
  },
  "runtimes": {
    "sysbox-runc": {
      "path": "/usr/local/bin/sysbox-runc"
    }
  }
}
`,
		},
		{
			name: "other runtimes kept",
			src:  `{"runtimes":{"crun":{"path":"/usr/bin/crun","runtimeArgs":["--debug"]}}}`,
			want: `{
  "runtimes": {
    "crun": {
      "path": "/usr/bin/crun",
      "runtimeArgs": [
        "--debug"
      ]
    },
    "sysbox-runc": {
      "path": "/usr/local/bin/sysbox-runc"
    }
  }
}
`,
		},
		{
			name: "existing sysbox entry, same path: untouched",
			src:  "{\"runtimes\": {\"sysbox-runc\": {\"path\": \"/usr/local/bin/sysbox-runc\"}}}",
		},
		{
			name: "old path replaced",
			src:  `{"runtimes":{"sysbox-runc":{"path":"/usr/bin/sysbox-runc"}}}`,
			want: "{\n  \"runtimes\": {\n    \"sysbox-runc\": {\n      \"path\": \"/usr/local/bin/sysbox-runc\"\n    }\n  }\n}\n",
		},
		{
			name: "default runtime",
			src:  `{"default-runtime":"runc"}`,
			def:  true,
			want: "{\n  \"default-runtime\": \"sysbox-runc\",\n  \"runtimes\": {\n    \"sysbox-runc\": {\n      \"path\": \"/usr/local/bin/sysbox-runc\"\n    }\n  }\n}\n",
		},
		{
			name: "invalid JSON: line and column",
			src:  "{\n  \"debug\": true,\n  \"log-level\": \"info\",\n}\n",
			err:  "daemon.json: invalid JSON at line 4, column 1",
		},
		{
			name: "invalid JSON: cut short",
			src:  "{\n  \"debug\": tr",
			err:  "daemon.json: invalid JSON at line 2, column 14: unexpected end of input",
		},
		{
			name: "not an object",
			src:  `["runtimes"]`,
			err:  "must hold a JSON object, not an array",
		},
		{
			name: "runtimes not an object",
			src:  `{"runtimes": "x"}`,
			err:  `"runtimes": must hold a JSON object, not a string`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changes, err := mergeDaemonJSON([]byte(tt.src), "daemon.json", dockerWant{RuntimePath: ours, DefaultRuntime: tt.def})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if string(out) != tt.src || len(changes) != 0 {
					t.Fatalf("want no change, got %d changes:\n%s", len(changes), out)
				}
				return
			}
			if string(out) != tt.want {
				t.Fatalf("got:\n%s\nwant:\n%s", out, tt.want)
			}
			// Merging again changes nothing.
			again, more, err := mergeDaemonJSON(out, "daemon.json", dockerWant{RuntimePath: ours, DefaultRuntime: tt.def})
			if err != nil || len(more) != 0 || string(again) != string(out) {
				t.Fatalf("second merge: %v, %d changes", err, len(more))
			}
			// Undoing gives back the same JSON (byte-exact comes from the
			// backup; see the round trip test).
			back, _, err := unmergeJSON(out, "daemon.json", changes)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, back, tt.src) {
				t.Fatalf("unmerge: got\n%s\nwant the equivalent of\n%s", back, tt.src)
			}
		})
	}
}

func sameJSON(t *testing.T, a []byte, b string) bool {
	t.Helper()
	if strings.TrimSpace(b) == "" {
		b = "{}"
	}
	if strings.TrimSpace(string(a)) == "" {
		a = []byte("{}")
	}
	return jsonEqual(a, []byte(b))
}

func TestUnmergeDaemonJSONKeepsAdminEdits(t *testing.T) {
	src := `{"debug":true}`
	out, changes, err := mergeDaemonJSON([]byte(src), "daemon.json", dockerWant{RuntimePath: ours, DefaultRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(string) string
		want string
	}{
		{
			name: "untouched",
			edit: func(s string) string { return s },
			want: `{"debug":true}`,
		},
		{
			name: "admin added a key and a runtime",
			edit: func(s string) string {
				s = strings.Replace(s, `"debug": true,`, `"debug": true, "log-level": "warn",`, 1)
				return strings.Replace(s, `"runtimes": {`, `"runtimes": {"crun": {"path": "/usr/bin/crun"},`, 1)
			},
			want: `{"debug":true,"log-level":"warn","runtimes":{"crun":{"path":"/usr/bin/crun"}}}`,
		},
		{
			name: "admin pointed sysbox-runc elsewhere: theirs now",
			edit: func(s string) string { return strings.Replace(s, ours, "/opt/sysbox-runc", 1) },
			want: `{"debug":true,"runtimes":{"sysbox-runc":{"path":"/opt/sysbox-runc"}}}`,
		},
		{
			name: "admin chose another default: kept",
			edit: func(s string) string {
				return strings.Replace(s, `"default-runtime": "sysbox-runc"`, `"default-runtime": "crun"`, 1)
			},
			want: `{"debug":true,"default-runtime":"crun"}`,
		},
		{
			name: "admin removed everything of ours",
			edit: func(string) string { return `{"debug": false}` },
			want: `{"debug": false}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			back, _, err := unmergeJSON([]byte(tt.edit(string(out))), "daemon.json", changes)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, back, tt.want) {
				t.Fatalf("got\n%s\nwant the equivalent of\n%s", back, tt.want)
			}
		})
	}
}

func TestUnmergeDaemonJSONOldPathComesBack(t *testing.T) {
	src := `{"runtimes":{"sysbox-runc":{"path":"/usr/bin/sysbox-runc","runtimeArgs":["--x"]}}}`
	out, changes, err := mergeDaemonJSON([]byte(src), "daemon.json", dockerWant{RuntimePath: ours})
	if err != nil {
		t.Fatal(err)
	}
	back, empty, err := unmergeJSON(out, "daemon.json", changes)
	if err != nil || empty {
		t.Fatal(err, empty)
	}
	if !sameJSON(t, back, src) {
		t.Fatalf("got %s", back)
	}
}

func TestLineCol(t *testing.T) {
	src := []byte("ab\ncde\nf")
	for _, tt := range []struct {
		off       int64
		line, col int
	}{{1, 1, 1}, {2, 1, 2}, {3, 1, 3}, {4, 2, 1}, {6, 2, 3}, {8, 3, 1}} {
		if l, c := lineCol(src, tt.off); l != tt.line || c != tt.col {
			t.Errorf("offset %d: got %d:%d, want %d:%d", tt.off, l, c, tt.line, tt.col)
		}
	}
}
