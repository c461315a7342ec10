package install

import (
	"slices"
	"strings"
	"testing"
)

func TestScanTOML(t *testing.T) {
	src := `# top
version = 2
text = """
[not.a.header]
"""
lit = '''
[nor.this]'''
arr = [
  ["nested"],
  [1, 2],
]
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs" # [comment]
[[array.of.tables]]
  'quoted key' = 1
[ spaced . "dotted.part" ]
`
	lines, err := scanTOML(src)
	if err != nil {
		t.Fatal(err)
	}
	var headers [][]string
	var keys []string
	for _, l := range lines {
		if l.header != nil {
			headers = append(headers, l.header)
		}
		if l.key != nil {
			keys = append(keys, strings.Join(l.key, "."))
		}
	}
	wantHeaders := [][]string{
		{"plugins", "io.containerd.grpc.v1.cri", "containerd"},
		{"array", "of", "tables"},
		{"spaced", "dotted.part"},
	}
	if !slices.EqualFunc(headers, wantHeaders, slices.Equal) {
		t.Errorf("headers %q, want %q", headers, wantHeaders)
	}
	wantKeys := []string{"version", "text", "lit", "arr", "snapshotter", "quoted key"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("keys %q, want %q", keys, wantKeys)
	}
	if lines[7].end != 10 { // arr = [ ... ] ends at its closing bracket
		t.Errorf("arr ends at line %d, want 10", lines[7].end)
	}
}

// containerd 1.6's config as Debian ships it on these machines.
const containerdDebian = `version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`

func TestMergeContainerd(t *testing.T) {
	block2 := "# Added by `sysbox install`; `sysbox uninstall` removes it.\n" +
		"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc]\n" +
		"  runtime_type = \"io.containerd.runc.v2\"\n" +
		"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc.options]\n" +
		"  BinaryName = \"/usr/local/bin/sysbox-runc\"\n"
	tests := []struct {
		name    string
		src     string
		missing bool
		version int64 // for a new file
		want    string
		err     string
		note    string
	}{
		{name: "missing file", missing: true, version: 2, want: "version = 2\n\n" + block2},
		{name: "missing file, containerd 2", missing: true, version: 3, want: "version = 3\n\n" +
			"# Added by `sysbox install`; `sysbox uninstall` removes it.\n" +
			"[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.sysbox-runc]\n" +
			"  runtime_type = \"io.containerd.runc.v2\"\n" +
			"[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.sysbox-runc.options]\n" +
			"  BinaryName = \"/usr/local/bin/sysbox-runc\"\n"},
		{name: "blank file", src: "\n", version: 2, want: "version = 2\n\n" + block2},
		{name: "debian's version 2", src: containerdDebian, want: containerdDebian + "\n" + block2},
		{name: "no newline at the end", src: "version = 2", want: "version = 2\n\n" + block2},
		{
			name: "version 1 (no version key)",
			src:  "[plugins.cri]\n  stream_server_port = \"10010\"\n",
			want: "[plugins.cri]\n  stream_server_port = \"10010\"\n\n" +
				"# Added by `sysbox install`; `sysbox uninstall` removes it.\n" +
				"[plugins.cri.containerd.runtimes.sysbox-runc]\n  runtime_type = \"io.containerd.runc.v2\"\n" +
				"[plugins.cri.containerd.runtimes.sysbox-runc.options]\n  BinaryName = \"/usr/local/bin/sysbox-runc\"\n",
		},
		{
			name: "existing entry with an old path: replaced in place",
			src: "version = 2\n" +
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc]\n" +
				"    runtime_type = \"io.containerd.runc.v2\"\n" +
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc.options]\n" +
				"    BinaryName = \"/usr/bin/sysbox-runc\"  # from the old package\n" +
				"    SystemdCgroup = true\n",
			want: "version = 2\n" +
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc]\n" +
				"    runtime_type = \"io.containerd.runc.v2\"\n" +
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc.options]\n" +
				"    BinaryName = \"/usr/local/bin/sysbox-runc\"\n" +
				"    SystemdCgroup = true\n",
		},
		{
			name: "existing entry without options: key inserted into its table",
			src: "version = 2\n" +
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc]\n" +
				"  runtime_type = \"io.containerd.runc.v1\"\n" +
				"  privileged_without_host_devices = false\n" +
				"\n# next\n[other]\n",
			want: "version = 2\n" +
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc]\n" +
				"  runtime_type = \"io.containerd.runc.v2\"\n" +
				"  privileged_without_host_devices = false\n" +
				"\n# next\n[other]\n\n" +
				"# Added by `sysbox install`; `sysbox uninstall` removes it.\n" +
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc.options]\n" +
				"  BinaryName = \"/usr/local/bin/sysbox-runc\"\n",
		},
		{
			name: "already there: untouched",
			src:  "version = 2\n" + block2,
		},
		{
			name: "CRI disabled: added, with a note",
			src:  "version = 2\ndisabled_plugins = [\"cri\"]\n",
			want: "version = 2\ndisabled_plugins = [\"cri\"]\n\n" + block2,
			note: "disables the CRI plugin",
		},
		{
			name: "invalid TOML",
			src:  "version = 2\n[plugins\n",
			err:  "config.toml: invalid TOML at line 2, column",
		},
		{
			name: "inline table: refused with what to add by hand",
			src:  "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  runtimes = { runc = { runtime_type = \"io.containerd.runc.v2\" } }\n",
			err:  "add this to it by hand",
		},
		{
			name: "unknown version",
			src:  "version = 9\n",
			err:  "config version 9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, rec, notes, err := mergeContainerd([]byte(tt.src), !tt.missing, "config.toml", ours, tt.version)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.note != "" && (len(notes) == 0 || !strings.Contains(notes[0], tt.note)) {
				t.Errorf("notes %q, want %q", notes, tt.note)
			}
			if tt.want == "" {
				if rec != nil || string(out) != tt.src {
					t.Fatalf("want no change, got\n%s", out)
				}
				return
			}
			if string(out) != tt.want {
				t.Fatalf("got:\n%s\nwant:\n%s", out, tt.want)
			}
			// Again: nothing to do.
			if _, again, _, err := mergeContainerd(out, true, "config.toml", ours, tt.version); err != nil || again != nil {
				t.Fatalf("second merge: %v %+v", err, again)
			}
			back, exists, err := unmergeFile("config.toml", out, &fileRecord{Kind: kindTOML, TOML: rec.TOML, Created: rec.Created, Existed: !tt.missing})
			if err != nil {
				t.Fatal(err)
			}
			if exists == tt.missing || string(back) != strings.TrimSpace(tt.src)+trailingNL(tt.src) {
				t.Fatalf("unmerge: exists %v, got\n%q\nwant\n%q", exists, back, tt.src)
			}
		})
	}
}

// trailingNL: a blank file comes back empty; the others byte-exact.
func trailingNL(src string) string {
	if strings.TrimSpace(src) == "" {
		return ""
	}
	return src[len(strings.TrimRight(src, " \n")):]
}

func TestMergeContainersConf(t *testing.T) {
	block := "# Added by `sysbox install`; `sysbox uninstall` removes it.\n" +
		"[engine.runtimes]\n  sysbox-runc = [\"/usr/local/bin/sysbox-runc\"]\n"
	tests := []struct {
		name string
		src  string
		want string
		err  string
	}{
		{name: "missing or empty", src: "", want: block},
		{
			name: "engine table but no runtimes table",
			src:  "[engine]\ncgroup_manager = \"cgroupfs\"\n",
			want: "[engine]\ncgroup_manager = \"cgroupfs\"\n\n" + block,
		},
		{
			name: "runtimes table with a multi-line entry: ours goes after it",
			src: "[containers]\nlog_driver = \"k8s-file\"\n\n[engine.runtimes]\ncrun = [\n  \"/usr/bin/crun\",\n  \"/usr/local/bin/crun\",\n]\n\n" +
				"# comment about the next table\n[network]\nnetwork_backend = \"netavark\"\n",
			want: "[containers]\nlog_driver = \"k8s-file\"\n\n[engine.runtimes]\ncrun = [\n  \"/usr/bin/crun\",\n  \"/usr/local/bin/crun\",\n]\n" +
				"sysbox-runc = [\"/usr/local/bin/sysbox-runc\"]\n\n" +
				"# comment about the next table\n[network]\nnetwork_backend = \"netavark\"\n",
		},
		{
			name: "old path replaced in place",
			src:  "[engine.runtimes]\n  sysbox-runc = [\"/usr/bin/sysbox-runc\"]\n  runc = [\"/usr/bin/runc\"]\n",
			want: "[engine.runtimes]\n  sysbox-runc = [\"/usr/local/bin/sysbox-runc\"]\n  runc = [\"/usr/bin/runc\"]\n",
		},
		{name: "already there", src: "[engine.runtimes]\nsysbox-runc = [ '/usr/local/bin/sysbox-runc' ]\n"},
		{name: "invalid", src: "[engine\n", err: "containers.conf: invalid TOML at line 1"},
		{
			name: "runtimes as dotted keys: refused",
			src:  "[engine]\nruntimes.crun = [\"/usr/bin/crun\"]\n",
			err:  "add this to it by hand",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, rec, err := mergeContainersConf([]byte(tt.src), "containers.conf", ours)
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
				if rec != nil || string(out) != tt.src {
					t.Fatalf("want no change, got\n%s", out)
				}
				return
			}
			if string(out) != tt.want {
				t.Fatalf("got:\n%s\nwant:\n%s", out, tt.want)
			}
			back, err := unsetTOMLEdits(string(out), rec.TOML)
			if err != nil {
				t.Fatal(err)
			}
			if back != tt.src {
				t.Fatalf("unmerge: got\n%q\nwant\n%q", back, tt.src)
			}
		})
	}
}

// The admin edits the file after install; uninstall takes out only ours.
func TestUnsetTOMLKeepsAdminEdits(t *testing.T) {
	out, rec, _, err := mergeContainerd([]byte(containerdDebian), true, "config.toml", ours, 2)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(string) string
		want string
	}{
		{
			name: "a key added elsewhere",
			edit: func(s string) string { return strings.Replace(s, "bin_dir", "max_conf_num = 1\n      bin_dir", 1) },
			want: strings.Replace(containerdDebian, "bin_dir", "max_conf_num = 1\n      bin_dir", 1),
		},
		{
			name: "a table appended after ours",
			edit: func(s string) string { return s + "\n[metrics]\n  address = \"127.0.0.1:1338\"\n" },
			want: containerdDebian + "\n[metrics]\n  address = \"127.0.0.1:1338\"\n",
		},
		{
			name: "a key added inside our block: it and its table stay",
			edit: func(s string) string {
				return strings.Replace(s, "  BinaryName =", "  SystemdCgroup = true\n  BinaryName =", 1)
			},
			want: containerdDebian + "\n" +
				"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sysbox-runc.options]\n" +
				"  SystemdCgroup = true\n",
		},
		{
			name: "our block removed by the admin",
			edit: func(s string) string { return containerdDebian },
			want: containerdDebian,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			back, err := unsetTOMLEdits(tt.edit(string(out)), rec.TOML)
			if err != nil {
				t.Fatal(err)
			}
			if back != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", back, tt.want)
			}
			if _, err := parseTOMLDoc([]byte(back), "result"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
