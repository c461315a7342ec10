package probe

import (
	"errors"
	"testing"
)

func TestParseKernelRelease(t *testing.T) {
	tests := []struct {
		in      string
		want    KernelVersion
		wantErr bool
	}{
		{"6.18.44-fc-v769", KernelVersion{6, 18, 44}, false},
		{"5.15.0-91-generic", KernelVersion{5, 15, 0}, false},
		{"6.1.0-18-amd64", KernelVersion{6, 1, 0}, false},
		{"5.19.0", KernelVersion{5, 19, 0}, false},
		{"6.8-rc1", KernelVersion{6, 8, 0}, false},
		{"4.19.0+", KernelVersion{4, 19, 0}, false},
		{"6.10.14-linuxkit", KernelVersion{6, 10, 14}, false},
		{"5.14.0-427.13.1.el9_4.x86_64", KernelVersion{5, 14, 0}, false},
		{"", KernelVersion{}, true},
		{"6", KernelVersion{}, true},
		{"linux", KernelVersion{}, true},
		{"6..1", KernelVersion{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseKernelRelease(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseKernelRelease(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseKernelRelease(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestKernelAtLeast(t *testing.T) {
	tests := []struct {
		v            KernelVersion
		major, minor int
		want         bool
	}{
		{KernelVersion{5, 19, 0}, 5, 19, true},
		{KernelVersion{5, 18, 99}, 5, 19, false},
		{KernelVersion{6, 0, 0}, 5, 19, true},
		{KernelVersion{6, 6, 0}, 6, 7, false},
		{KernelVersion{6, 18, 44}, 6, 7, true},
		{KernelVersion{4, 20, 0}, 5, 0, false},
	}
	for _, tt := range tests {
		if got := tt.v.AtLeast(tt.major, tt.minor); got != tt.want {
			t.Errorf("%v.AtLeast(%d, %d) = %v, want %v", tt.v, tt.major, tt.minor, got, tt.want)
		}
	}
}

func TestKernelResult(t *testing.T) {
	tests := []struct {
		release string
		want    Status
	}{
		{"6.18.44-fc-v769", OK},
		{"5.19.0-1-generic", OK},
		{"5.15.0-91-generic", Fail},
		{"bogus", Fail},
	}
	for _, tt := range tests {
		t.Run(tt.release, func(t *testing.T) {
			v, err := ParseKernelRelease(tt.release)
			r := kernelResult(tt.release, v, err)
			checkResult(t, r, "kernel", tt.want)
		})
	}
}

func TestBinfmtResult(t *testing.T) {
	tests := []struct {
		name       string
		v          KernelVersion
		kerr       error
		registered bool
		want       Status
	}{
		{"6.18 with binfmt_misc", KernelVersion{6, 18, 44}, nil, true, OK},
		{"6.7 exactly", KernelVersion{6, 7, 0}, nil, true, OK},
		{"6.6 too old", KernelVersion{6, 6, 30}, nil, true, Warn},
		{"6.18 without binfmt_misc", KernelVersion{6, 18, 0}, nil, false, Warn},
		{"unknown kernel", KernelVersion{}, errors.New("bad"), true, Warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkResult(t, binfmtResult(tt.v, tt.kerr, tt.registered), "binfmt_misc", tt.want)
		})
	}
}

func TestModulesResult(t *testing.T) {
	checkResult(t, modulesResult(true, true), "modules", OK)
	for _, tt := range []struct{ mods, cfs bool }{{false, false}, {true, false}, {false, true}} {
		r := modulesResult(tt.mods, tt.cfs)
		checkResult(t, r, "modules", Warn)
	}
}

func TestFilesystemsHas(t *testing.T) {
	const text = "nodev\tsysfs\nnodev\tproc\n\text4\nnodev\tbinfmt_misc\n\tfuseblk\nnodev\tfuse\nnodev\tfusectl\n"
	tests := []struct {
		fstype string
		want   bool
	}{
		{"binfmt_misc", true},
		{"ext4", true},
		{"fuse", true},
		{"configfs", false},
		{"nodev", false},
		{"fus", false},
	}
	for _, tt := range tests {
		if got := filesystemsHas(text, tt.fstype); got != tt.want {
			t.Errorf("filesystemsHas(%q) = %v, want %v", tt.fstype, got, tt.want)
		}
	}
}

// checkResult asserts a result's name and status, and that a WARN or FAIL
// tells the user what to do.
func checkResult(t *testing.T, r Result, name string, want Status) {
	t.Helper()
	if r.Name != name {
		t.Errorf("name = %q, want %q", r.Name, name)
	}
	if r.Status != want {
		t.Errorf("%s: status = %s, want %s (detail: %s)", r.Name, r.Status, want, r.Detail)
	}
	if r.Detail == "" {
		t.Errorf("%s: empty detail", r.Name)
	}
	if r.Status != OK && r.Remedy == "" {
		t.Errorf("%s: %s without a remedy (detail: %s)", r.Name, r.Status, r.Detail)
	}
}
