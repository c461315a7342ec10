package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnitsContent(t *testing.T) {
	for _, name := range unitNames {
		b, err := renderUnit(name, "/usr/local", "/var/lib/sysbox")
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Contains(s, "@") {
			t.Errorf("%s: placeholder left:\n%s", name, s)
		}
		for _, want := range []string{"Before=docker.service containerd.service", "StandardOutput=journal"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
		if name != "sysbox.service" {
			for _, want := range []string{"Restart=on-failure", "PartOf=sysbox.service", "ExecStart=/usr/local/bin/" + strings.TrimSuffix(name, ".service")} {
				if !strings.Contains(s, want) {
					t.Errorf("%s lacks %q", name, want)
				}
			}
		}
	}
	b, _ := renderUnit("sysbox-mgr.service", "/usr/local", "/srv/sysbox")
	if !strings.Contains(string(b), "--data-root /srv/sysbox\n") {
		t.Errorf("data root not in the mgr unit:\n%s", b)
	}
}

// The units pass systemd's own checker. It needs no running systemd, only
// the systemd package (CI installs it).
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (apt-get install systemd): unit files not verified")
	}
	dir := t.TempDir()
	prefix := filepath.Join(dir, "prefix")
	if err := os.MkdirAll(filepath.Join(prefix, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart= names an executable.
	for _, n := range roleLinks {
		if err := os.WriteFile(filepath.Join(prefix, "bin", n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for _, name := range unitNames {
		b, err := renderUnit(name, prefix, "/var/lib/sysbox")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	cmd := exec.Command(sa, append([]string{"verify"}, paths...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	// verify exits 0 on some problems (an unknown value is "ignored"), so
	// any word from it is a failure.
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}
