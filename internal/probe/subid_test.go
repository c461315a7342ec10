package probe

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseSubID(t *testing.T) {
	const text = `alice:100000:65536

# a comment
sysbox:231072:268435456
  bob:165536:65536  
broken line
carol:1:2:3
:5:5
dave:x:65536
erin:10:0
frank:4294967295:2
gina:200:-1
`
	ranges, problems, err := parseSubID(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	wantRanges := []subIDRange{
		{"alice", 100000, 65536},
		{"sysbox", 231072, 268435456},
		{"bob", 165536, 65536},
	}
	if !slices.Equal(ranges, wantRanges) {
		t.Errorf("ranges = %v, want %v", ranges, wantRanges)
	}
	wantLines := []string{"line 6:", "line 7:", "line 8:", "line 9:", "line 10:", "line 11:", "line 12:"}
	if len(problems) != len(wantLines) {
		t.Fatalf("problems = %q, want %d of them", problems, len(wantLines))
	}
	for i, p := range problems {
		if !strings.HasPrefix(p, wantLines[i]) {
			t.Errorf("problem %d = %q, want it to start with %q", i, p, wantLines[i])
		}
	}
}

func TestSubIDResult(t *testing.T) {
	good := subIDFile{path: "/etc/subuid", ranges: []subIDRange{{"alice", 100000, 65536}, {"sysbox", 231072, 268435456}}}
	goodGID := good
	goodGID.path = "/etc/subgid"
	empty := subIDFile{path: "/etc/subgid"}
	missing := subIDFile{path: "/etc/subgid", missing: true}
	small := subIDFile{path: "/etc/subgid", ranges: []subIDRange{{"sysbox", 231072, 1000}}}
	split := subIDFile{path: "/etc/subgid", ranges: []subIDRange{{"sysbox", 231072, 32768}, {"sysbox", 500000, 32768}}}
	malformed := goodGID
	malformed.problems = []string{"line 3: bad count \"x\""}
	unreadable := subIDFile{path: "/etc/subgid", err: errors.New("permission denied")}

	tests := []struct {
		name      string
		uid, gid  subIDFile
		want      Status
		detailHas string
	}{
		{"both present", good, goodGID, OK, "231072-268666527 (268435456 ids, room for 4096 containers)"},
		{"this machine: empty files", subIDFile{path: "/etc/subuid"}, empty, Warn, `no "sysbox" entry in /etc/subuid`},
		{"subgid missing", good, missing, Warn, "/etc/subgid does not exist"},
		{"range too small", good, small, Warn, "1000 ids, room for 0 containers"},
		{"two ranges add up", good, split, OK, "231072-263839,500000-532767 (65536 ids, room for 1 container)"},
		{"malformed lines", good, malformed, Warn, `/etc/subgid line 3: bad count "x"`},
		{"unreadable", good, unreadable, Warn, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := subIDResult(tt.uid, tt.gid)
			checkResult(t, r, "subid", tt.want)
			if !strings.Contains(r.Detail, tt.detailHas) {
				t.Errorf("detail %q lacks %q", r.Detail, tt.detailHas)
			}
			if r.Status == Warn && !tt.uid.missing && tt.name != "malformed lines" && !strings.Contains(r.Remedy, "sysbox install") {
				t.Errorf("remedy %q does not point at sysbox install", r.Remedy)
			}
		})
	}
}
