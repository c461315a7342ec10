package install

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEngine plays dockerd for install: GET /info reports what it has
// loaded, and reload rereads daemon.json the way dockerd does, which
// replaces runtimes and default-runtime only when the file sets them.
type fakeEngine struct {
	mu       sync.Mutex
	config   string
	runtimes map[string]string
	def      string
	reloads  int
}

func (e *fakeEngine) reload() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reloads++
	b, err := os.ReadFile(e.config)
	if errors.Is(err, fs.ErrNotExist) || len(b) == 0 {
		b = []byte("{}")
	} else if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err // dockerd logs it and keeps what it had
	}
	if r, ok := raw["runtimes"]; ok {
		var rts map[string]struct {
			Path string `json:"path"`
		}
		if err := json.Unmarshal(r, &rts); err != nil {
			return err
		}
		e.runtimes = map[string]string{"runc": "runc"}
		for name, rt := range rts {
			e.runtimes[name] = rt.Path
		}
	}
	var def string
	if d, ok := raw["default-runtime"]; ok {
		_ = json.Unmarshal(d, &def)
	}
	if def != "" {
		e.def = def
	}
	return nil
}

func (e *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch r.URL.Path {
	case "/info":
		info := map[string]any{"DefaultRuntime": e.def}
		rts := map[string]any{}
		for n, p := range e.runtimes {
			rts[n] = map[string]string{"path": p}
		}
		info["Runtimes"] = rts
		_ = json.NewEncoder(w).Encode(info)
	case "/containers/json":
		_, _ = w.Write([]byte("[]"))
	default:
		http.NotFound(w, r)
	}
}

// startFakeEngine serves a fake dockerd on a unix socket, loaded with the
// config as it is now.
func startFakeEngine(t *testing.T, root string) (*fakeEngine, *dockerd) {
	t.Helper()
	e := &fakeEngine{config: filepath.Join(root, dockerConfig), runtimes: map[string]string{"runc": "runc"}, def: "runc"}
	if err := e.reload(); err != nil {
		t.Fatal(err)
	}
	e.reloads = 0
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return e, &dockerd{pid: -1, config: dockerConfig, socket: sock}
}

// The engine lists the runtime after install and drops it after uninstall,
// and the file comes back byte for byte, even though dockerd's reload
// ignores keys a file leaves out.
func TestDockerReload(t *testing.T) {
	tests := []struct {
		name     string
		original *string
		def      bool
	}{
		{name: "no daemon.json"},
		{name: "no daemon.json, default runtime", def: true},
		{name: "other keys", original: ptr("{\"debug\": true}")},
		{name: "other keys, default runtime", original: ptr("{\"debug\": true}"), def: true},
		{name: "own default and runtimes", original: ptr(`{"default-runtime": "crun", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}`), def: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.original != nil {
				writeHostFile(t, root, dockerConfig, *tt.original)
			}
			engine, d := startFakeEngine(t, root)
			wantDef := engine.def
			wantRuntimes := len(engine.runtimes)

			in := testInstaller(t, root, nil)
			in.fakeDockerd, in.fakeReload = d, engine.reload
			in.timeout = 2 * time.Second
			in.defaultRuntime = tt.def
			in.st.Prefix = in.prefix
			if err := in.configureDocker(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := in.saveState(true); err != nil {
				t.Fatal(err)
			}
			if engine.runtimes[runtimeName] != ours || (tt.def && engine.def != runtimeName) {
				t.Fatalf("after install the engine has %v, default %s", engine.runtimes, engine.def)
			}

			un := testInstaller(t, root, nil)
			un.fakeDockerd, un.fakeReload = d, engine.reload
			un.timeout = 2 * time.Second
			if err := un.uninstall(context.Background(), false, false); err != nil {
				t.Fatal(err)
			}
			if _, ok := engine.runtimes[runtimeName]; ok || engine.def != wantDef || len(engine.runtimes) != wantRuntimes {
				t.Fatalf("after uninstall the engine has %v, default %s (want default %s)", engine.runtimes, engine.def, wantDef)
			}
			b, err := os.ReadFile(filepath.Join(root, dockerConfig))
			switch {
			case tt.original == nil && err == nil:
				t.Fatalf("daemon.json left behind:\n%s", b)
			case tt.original != nil && string(b) != *tt.original:
				t.Fatalf("daemon.json: got\n%s\nwant\n%s", b, *tt.original)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDockerReloadView(t *testing.T) {
	changes := []jsonChange{{Path: []string{"runtimes", runtimeName}}, {Path: []string{"default-runtime"}}}
	tests := []struct {
		base, want, def string
	}{
		{"", "{\n  \"runtimes\": {},\n  \"default-runtime\": \"runc\"\n}\n", "runc"},
		{`{"default-runtime":"crun"}`, "{\n  \"default-runtime\": \"crun\",\n  \"runtimes\": {}\n}\n", "crun"},
		{`{"runtimes":{"a":{"path":"/a"}}}`, "{\n  \"runtimes\": {\n    \"a\": {\n      \"path\": \"/a\"\n    }\n  },\n  \"default-runtime\": \"runc\"\n}\n", "runc"},
	}
	for _, tt := range tests {
		view, def, err := dockerReloadView([]byte(tt.base), "daemon.json", changes)
		if err != nil {
			t.Fatal(err)
		}
		if string(view) != tt.want || def != tt.def {
			t.Errorf("base %s: got\n%s(default %q)\nwant\n%s(default %q)", tt.base, view, def, tt.want, tt.def)
		}
	}
}

func TestCheckDockerdFlags(t *testing.T) {
	tests := []struct {
		args   []string
		def    bool
		byFlag bool
		err    string
	}{
		{args: []string{"dockerd", "--log-level=info"}},
		{args: []string{"dockerd", "--add-runtime", "sysbox-runc=" + ours}, byFlag: true},
		{args: []string{"dockerd", "--add-runtime=sysbox-runc=/tmp/devtools/sysbox-runc"}, err: "remove the flag first"},
		{args: []string{"dockerd", "--add-runtime", "sysbox-runc=" + ours}, def: true, err: "remove the flag first"},
		{args: []string{"dockerd", "--add-runtime", "crun=/usr/bin/crun"}},
		{args: []string{"dockerd", "--default-runtime", "crun"}, def: true, err: "would refuse to start"},
		{args: []string{"dockerd", "--default-runtime", "crun"}},
	}
	for _, tt := range tests {
		byFlag, err := checkDockerdFlags(&dockerd{pid: 1, args: tt.args}, dockerWant{RuntimePath: ours, DefaultRuntime: tt.def})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: err %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || byFlag != tt.byFlag {
			t.Errorf("%v: byFlag %v, err %v", tt.args, byFlag, err)
		}
	}
}
