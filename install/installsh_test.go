package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeRelease lays out what goreleaser publishes: the archive for each
// architecture and checksums.txt ("<sha256>  <file>" lines).
func fakeRelease(t *testing.T, version string, binary []byte, corrupt bool) string {
	t.Helper()
	dir := t.TempDir()
	var sums strings.Builder
	for _, arch := range []string{"amd64", "arm64"} {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for _, f := range []struct {
			name string
			body []byte
			mode int64
		}{{"LICENSE", []byte("license\n"), 0o644}, {"sysbox", append(binary, arch...), 0o755}} {
			hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(f.body); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := gz.Close(); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("sysbox_%s_linux_%s.tar.gz", version, arch)
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(buf.Bytes())
		if corrupt {
			sum[0] ^= 0xff
		}
		fmt.Fprintf(&sums, "%x  %s\n", sum, name)
	}
	if err := os.WriteFile(filepath.Join(dir, "checksums.txt"), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runInstallSh pipes install.sh into sh, as `curl ... | sh` does, against a
// release served on loopback.
func runInstallSh(t *testing.T, release, prefix string, env ...string) (string, error) {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(release)))
	t.Cleanup(srv.Close)
	script, err := os.Open("../install.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer script.Close()
	cmd := exec.Command("sh")
	cmd.Stdin = script
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"SYSBOX_BASE_URL=" + srv.URL,
		"SYSBOX_PREFIX=" + prefix,
		"SYSBOX_SKIP_SETUP=1",
	}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestInstallSh(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("install.sh installs as root: run the tests as root")
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("no release for %s", runtime.GOARCH)
	}
	binary := []byte("#!/bin/sh\necho fake sysbox\n#")
	tests := []struct {
		name    string
		corrupt bool
		env     []string
		err     string
	}{
		{name: "latest"},
		{name: "a version", env: []string{"SYSBOX_VERSION=v1.2.3"}},
		{name: "a version not released", env: []string{"SYSBOX_VERSION=9.9.9"}, err: "lists no linux/" + runtime.GOARCH + " archive for 9.9.9"},
		{name: "bad checksum", corrupt: true, err: "checksum mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := fakeRelease(t, "1.2.3", binary, tt.corrupt)
			prefix := filepath.Join(t.TempDir(), "usr", "local")
			out, err := runInstallSh(t, release, prefix, tt.env...)
			got, rerr := os.ReadFile(filepath.Join(prefix, "bin", "sysbox"))
			if tt.err != "" {
				if err == nil || !strings.Contains(out, tt.err) {
					t.Fatalf("want failure with %q; err %v, output:\n%s", tt.err, err, out)
				}
				if rerr == nil {
					t.Fatalf("a binary was installed anyway")
				}
				return
			}
			if err != nil {
				t.Fatalf("install.sh: %v\n%s", err, out)
			}
			if want := string(binary) + runtime.GOARCH; string(got) != want {
				t.Fatalf("installed %q (%v), want %q\n%s", got, rerr, want, out)
			}
			fi, _ := os.Stat(filepath.Join(prefix, "bin", "sysbox"))
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("mode %v", fi.Mode())
			}
			if !strings.Contains(out, "sha256 verified") {
				t.Errorf("output:\n%s", out)
			}
		})
	}
}
