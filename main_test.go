package main

import (
	"slices"
	"testing"
)

func TestDispatch(t *testing.T) {
	tests := []struct {
		argv []string
		want []string
	}{
		{[]string{"/usr/local/bin/sysbox-runc", "--root", "/r", "create", "x"}, []string{"runc", "--root", "/r", "create", "x"}},
		{[]string{"sysbox-fs"}, []string{"fs"}},
		{[]string{"./bin/sysbox-mgr", "--data-root", "/d"}, []string{"mgr", "--data-root", "/d"}},
		{[]string{"sysbox", "runc", "state", "x"}, []string{"runc", "state", "x"}},
		{[]string{"/usr/bin/sysbox", "check", "--json"}, []string{"check", "--json"}},
		{[]string{"sysbox"}, []string{}},
		{[]string{"something-else", "version"}, []string{"version"}},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := dispatch(tt.argv); !slices.Equal(got, tt.want) {
			t.Errorf("dispatch(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}
