package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sysbox-dev/sysbox/internal/probe"
)

var sample = []probe.Result{
	{Name: "kernel", Status: probe.OK, Detail: "6.18.44-fc-v769 (5.19 or later)"},
	{Name: "subid", Status: probe.Warn, Detail: `no "sysbox" entry in /etc/subuid`, Remedy: "run `sysbox install`"},
	{Name: "fuse", Status: probe.Fail, Detail: "test mount failed:\nno such device", Remedy: "use a kernel with FUSE"},
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := writeText(&b, sample); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{
		"OK    kernel  6.18.44-fc-v769 (5.19 or later)",
		"WARN  subid   no \"sysbox\" entry in /etc/subuid -> fix: run `sysbox install`",
		"FAIL  fuse    test mount failed: no such device -> fix: use a kernel with FUSE",
		"3 checks: 1 OK, 1 WARN, 1 FAIL",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], want[i])
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSON(&b, sample); err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b.String())
	}
	if len(got) != len(sample) {
		t.Fatalf("got %d objects, want %d", len(got), len(sample))
	}
	for i, o := range got {
		if len(o) != 4 {
			t.Errorf("object %d has keys %v, want exactly name, status, detail, remedy", i, o)
		}
		s := sample[i]
		if o["name"] != s.Name || o["status"] != string(s.Status) || o["detail"] != s.Detail || o["remedy"] != s.Remedy {
			t.Errorf("object %d = %v, want %+v", i, o, s)
		}
	}

	b.Reset()
	if err := writeJSON(&b, nil); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(b.String()) != "[]" {
		t.Errorf("no results printed %q, want []", b.String())
	}
}

// main exits with ExitCode() and prints nothing more, so a failed check
// must come back as such an error and nothing else.
func TestFailedErrorExitCode(t *testing.T) {
	var err error = failedError{2}
	var ec interface{ ExitCode() int }
	if !errors.As(err, &ec) || ec.ExitCode() == 0 {
		t.Fatalf("failedError does not carry a non-zero exit code")
	}
	if n := count(sample, probe.Fail); n != 1 {
		t.Errorf("count(FAIL) = %d, want 1", n)
	}
	if n := count(sample[:2], probe.Fail); n != 0 {
		t.Errorf("count(FAIL) without failures = %d", n)
	}
}
