package install

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testInstaller works on a host laid out under a temp dir, editing the
// engines' files without asking the engines anything.
func testInstaller(t *testing.T, root string, out io.Writer) *installer {
	t.Helper()
	if out == nil {
		out = io.Discard
	}
	in := &installer{
		h:           &host{root: root, out: out},
		stateFile:   defaultStateFile,
		prefix:      "/usr/local",
		dataRoot:    "/var/lib/sysbox",
		skipEngines: true,
		cdVersion:   2,
	}
	if err := in.loadState(); err != nil {
		t.Fatal(err)
	}
	return in
}

func writeHostFile(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot is every file under root with its content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, root)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func configure(t *testing.T, in *installer, defaultRuntime bool) {
	t.Helper()
	in.defaultRuntime = defaultRuntime
	in.st.Prefix, in.st.DataRoot = in.prefix, in.dataRoot
	for _, step := range []func() error{
		func() error { return in.configureDocker(context.Background()) },
		in.configureContainerd,
		in.configurePodman,
		func() error { return in.saveState(true) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

func unconfigure(t *testing.T, in *installer) {
	t.Helper()
	if err := in.uninstall(context.Background(), false, false); err != nil {
		t.Fatal(err)
	}
}

// Install then uninstall gives back every file byte for byte, whatever was
// there before; installing twice is installing once.
func TestRoundTrip(t *testing.T) {
	hosts := []struct {
		name  string
		files map[string]string
	}{
		{name: "no config files at all"},
		{name: "empty files", files: map[string]string{dockerConfig: "", containerdConfig: "", podmanConfig: ""}},
		{name: "other keys", files: map[string]string{
			dockerConfig:     "{\n\t\"log-level\": \"warn\",   \"debug\" : false\n}",
			containerdConfig: containerdDebian,
			podmanConfig:     "[engine]\n# the admin's comment\ncgroup_manager = \"cgroupfs\"\n",
		}},
		{name: "existing sysbox entries", files: map[string]string{
			dockerConfig:     `{"runtimes":{"sysbox-runc":{"path":"/usr/local/bin/sysbox-runc"}}}`,
			containerdConfig: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc]\n  runtime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc.options]\n  BinaryName = \"/usr/local/bin/sysbox-runc\"\n",
			podmanConfig:     "[engine.runtimes]\nsysbox-runc = [\"/usr/local/bin/sysbox-runc\"]\n",
		}},
		{name: "an old path", files: map[string]string{
			dockerConfig:     `{"runtimes":{"sysbox-runc":{"path":"/usr/bin/sysbox-runc"}}, "default-runtime": "runc"}`,
			containerdConfig: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc]\n  runtime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc.options]\n  BinaryName = \"/usr/bin/sysbox-runc\"\n",
			podmanConfig:     "[engine.runtimes]\nsysbox-runc = [\"/usr/bin/sysbox-runc\"]\n",
		}},
	}
	for _, hh := range hosts {
		for _, def := range []bool{false, true} {
			name := hh.name
			if def {
				name += ", default runtime"
			}
			t.Run(name, func(t *testing.T) {
				root := t.TempDir()
				for p, c := range hh.files {
					writeHostFile(t, root, p, c)
				}
				before := snapshot(t, root)

				configure(t, testInstaller(t, root, nil), def)
				once := snapshot(t, root)
				var info dockerInfo
				if err := json.Unmarshal([]byte(once[dockerConfig]), &info); err != nil {
					t.Fatalf("daemon.json after install: %v\n%s", err, once[dockerConfig])
				}
				for _, p := range []string{dockerConfig, containerdConfig, podmanConfig} {
					if !strings.Contains(once[p], ours) {
						t.Errorf("%s lacks the runtime:\n%s", p, once[p])
					}
					if old, ok := before[p]; ok && once[p] != old && once[p+backupSuffix] != old {
						t.Errorf("%s: backup is not the original:\n%q", p, once[p+backupSuffix])
					}
				}

				configure(t, testInstaller(t, root, nil), def)
				if twice := snapshot(t, root); !equalMaps(once, twice) {
					t.Errorf("second install changed the host:\n%s", mapDiff(once, twice))
				}

				unconfigure(t, testInstaller(t, root, nil))
				if after := snapshot(t, root); !equalMaps(before, after) {
					t.Errorf("uninstall left the host changed:\n%s", mapDiff(before, after))
				}
			})
		}
	}
}

// A second install with other flags replaces the first one's changes, and
// uninstall still gives back the original.
func TestReinstallWithOtherFlags(t *testing.T) {
	root := t.TempDir()
	orig := `{"default-runtime": "runc", "debug": true}`
	writeHostFile(t, root, dockerConfig, orig)

	configure(t, testInstaller(t, root, nil), true)
	b, _ := os.ReadFile(filepath.Join(root, dockerConfig))
	if !strings.Contains(string(b), `"default-runtime": "sysbox-runc"`) {
		t.Fatalf("not the default runtime:\n%s", b)
	}
	configure(t, testInstaller(t, root, nil), false)
	b, _ = os.ReadFile(filepath.Join(root, dockerConfig))
	if !strings.Contains(string(b), `"default-runtime": "runc"`) || !strings.Contains(string(b), ours) {
		t.Fatalf("install without --default-runtime kept it:\n%s", b)
	}
	in := testInstaller(t, root, nil)
	in.prefix = "/opt/sysbox"
	configure(t, in, false)
	b, _ = os.ReadFile(filepath.Join(root, dockerConfig))
	if !strings.Contains(string(b), "/opt/sysbox/bin/sysbox-runc") || strings.Contains(string(b), ours) {
		t.Fatalf("new prefix not applied:\n%s", b)
	}
	unconfigure(t, testInstaller(t, root, nil))
	b, _ = os.ReadFile(filepath.Join(root, dockerConfig))
	if string(b) != orig {
		t.Fatalf("got\n%s\nwant\n%s", b, orig)
	}
}

// Edits the admin makes after install survive uninstall; a file install
// created and the admin added to stays, without our entry.
func TestUninstallKeepsAdminEdits(t *testing.T) {
	root := t.TempDir()
	writeHostFile(t, root, podmanConfig, "[engine]\ncgroup_manager = \"cgroupfs\"\n")
	configure(t, testInstaller(t, root, nil), false)

	// daemon.json did not exist: install created it; the admin adds a key.
	p := filepath.Join(root, dockerConfig)
	b, _ := os.ReadFile(p)
	edited := strings.Replace(string(b), "{\n", "{\n  \"log-level\": \"debug\",\n", 1)
	writeHostFile(t, root, dockerConfig, edited)
	// containers.conf: the admin appends a table.
	c, _ := os.ReadFile(filepath.Join(root, podmanConfig))
	writeHostFile(t, root, podmanConfig, string(c)+"\n[network]\nnetwork_backend = \"netavark\"\n")

	unconfigure(t, testInstaller(t, root, nil))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, b, `{"log-level": "debug"}`) {
		t.Errorf("daemon.json: got\n%s", b)
	}
	c, _ = os.ReadFile(filepath.Join(root, podmanConfig))
	if want := "[engine]\ncgroup_manager = \"cgroupfs\"\n\n[network]\nnetwork_backend = \"netavark\"\n"; string(c) != want {
		t.Errorf("containers.conf: got\n%q\nwant\n%q", c, want)
	}
	if _, err := os.Stat(filepath.Join(root, containerdConfig)); err == nil {
		t.Errorf("config.toml created by install survived uninstall")
	}
	left := snapshot(t, root)
	for f := range left {
		if strings.HasSuffix(f, backupSuffix) || strings.Contains(f, "sysbox/install.json") {
			t.Errorf("left behind: %s", f)
		}
	}
}

// A dry run prints diffs and writes nothing.
func TestDryRun(t *testing.T) {
	root := t.TempDir()
	writeHostFile(t, root, dockerConfig, "{\"debug\": true}\n")
	before := snapshot(t, root)
	var out bytes.Buffer
	in := testInstaller(t, root, &out)
	in.h.dry = true
	configure(t, in, false)
	if after := snapshot(t, root); !equalMaps(before, after) {
		t.Fatalf("dry run wrote:\n%s", mapDiff(before, after))
	}
	for _, want := range []string{
		"--- a/etc/docker/daemon.json\n+++ b/etc/docker/daemon.json\n@@ -1 +1,8 @@\n-{\"debug\": true}\n+{\n+  \"debug\": true,\n+  \"runtimes\": {",
		"would: back up /etc/docker/daemon.json to /etc/docker/daemon.json.sysbox-backup",
		"--- /dev/null\n+++ b/etc/containers/containers.conf\n@@ -0,0 +1,3 @@\n+# Added by",
		"--- /dev/null\n+++ b/etc/sysbox/install.json\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks\n%s\n---- output:\n%s", want, out.String())
		}
	}
}

func TestSubIDs(t *testing.T) {
	root := t.TempDir()
	orig := "alice:100000:65536\nbob:165536:65536\n"
	writeHostFile(t, root, "/etc/subuid", orig)
	writeHostFile(t, root, "/etc/subgid", "alice:100000:65536\n")
	in := testInstaller(t, root, nil)
	if err := in.ensureSubIDs(); err != nil {
		t.Fatal(err)
	}
	want := orig + "sysbox:231072:268435456\n"
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, _ := os.ReadFile(filepath.Join(root, f))
		if !strings.HasSuffix(string(b), "sysbox:231072:268435456\n") {
			t.Errorf("%s:\n%s", f, b)
		}
	}
	if err := in.ensureSubIDs(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "/etc/subuid")); string(b) != want {
		t.Errorf("second run: %s", b)
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := in.restoreFile(f); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "/etc/subuid")); string(b) != orig {
		t.Errorf("after restore: %s", b)
	}
}

func TestBinaryAndLinks(t *testing.T) {
	root := t.TempDir()
	in := testInstaller(t, root, nil)
	if err := in.installBinary(); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "/usr/local/bin")
	self, _ := os.Executable()
	if same, err := sameContent(self, filepath.Join(bin, "sysbox")); err != nil || !same {
		t.Fatalf("binary not copied: %v", err)
	}
	for _, l := range roleLinks {
		if tgt, err := os.Readlink(filepath.Join(bin, l)); err != nil || tgt != "sysbox" {
			t.Errorf("%s -> %q, %v", l, tgt, err)
		}
	}
	if err := in.installBinary(); err != nil {
		t.Fatal(err)
	}
	// Someone else's file under a role name is not replaced.
	writeHostFile(t, root, "/opt/x/bin/sysbox-fs", "not ours")
	other := testInstaller(t, root, nil)
	other.prefix = "/opt/x"
	if err := other.link("sysbox-fs"); err == nil || !strings.Contains(err.Error(), "not sysbox's to replace") {
		t.Errorf("err = %v", err)
	}
	if err := in.removeBinary(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(bin); len(ents) != 0 {
		t.Errorf("left in bin: %v", ents)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func mapDiff(a, b map[string]string) string {
	var sb strings.Builder
	for k, v := range a {
		w, ok := b[k]
		sb.WriteString(unifiedDiff(k, []byte(v), true, []byte(w), ok))
	}
	for k, w := range b {
		if _, ok := a[k]; !ok {
			sb.WriteString(unifiedDiff(k, nil, false, []byte(w), true))
		}
	}
	return sb.String()
}
