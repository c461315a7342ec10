package mountinfo

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := []byte(`36 35 98:0 /mnt1 /mnt\0402 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue

37 36 0:5 / /proc rw - proc proc
`)
	got, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{ID: 36, Parent: 35, Dev: "98:0", Root: "/mnt1", Point: "/mnt 2", Options: "rw,noatime", FSType: "ext3", Source: "/dev/root", Super: "rw,errors=continue"},
		{ID: 37, Parent: 36, Dev: "0:5", Root: "/", Point: "/proc", Options: "rw", FSType: "proc", Source: "proc"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", got, want)
	}
	for _, bad := range []string{
		"36 35 98:0 / /mnt rw - ext3",      // no source
		"36 35 98:0 / /mnt rw ext3 /dev/x", // no separator
		"x 35 98:0 / /mnt rw - ext3 /dev/x rw",
	} {
		if _, err := Parse([]byte(bad + "\n")); err == nil {
			t.Errorf("Parse(%q) took a malformed line", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`: "plain", `a\040b`: "a b", `tab\011`: "tab\t", `back\134slash`: `back\slash`,
		`short\04`: `short\04`, `not\999`: `not\999`,
		`tab\011x`: "tab\tx", `back\134lash`: `back\lash`, `trail\04`: `trail\04`, `bad\9x9`: `bad\9x9`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseLine(t *testing.T) {
	e, err := parseLine(`36 25 0:32 / /var/lib/docker/overlay2/x/merged rw,relatime shared:1 - overlay overlay rw,lowerdir=/a:/b,upperdir=/c,workdir=/d`)
	if err != nil || e.Point != "/var/lib/docker/overlay2/x/merged" || e.FSType != "overlay" || !strings.HasPrefix(e.Super, "rw,lowerdir=/a:/b") {
		t.Errorf("parseLine = %+v, %v", e, err)
	}
}

func TestSplitOptions(t *testing.T) {
	if got := SplitOptions(`a=1,b=x\,y,c`); !reflect.DeepEqual(got, []string{"a=1", "b=x,y", "c"}) {
		t.Errorf("SplitOptions = %q", got)
	}
	got := SplitOptions(`rw,lowerdir=/a\,b:/c,upperdir=/u,userxattr`)
	want := []string{"rw", "lowerdir=/a,b:/c", "upperdir=/u", "userxattr"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SplitOptions = %q, want %q", got, want)
	}
}

// TestTop: the topmost mount at a point is the one listed last.
func TestTop(t *testing.T) {
	es := []Entry{{ID: 1, Point: "/a", FSType: "ext4"}, {ID: 2, Point: "/b", FSType: "tmpfs"}, {ID: 3, Point: "/a", FSType: "fuse"}}
	if e, ok := Top(es, "/a"); !ok || e.ID != 3 {
		t.Errorf("Top /a = %+v, %v; want the fuse mount on top", e, ok)
	}
	if _, ok := Top(es, "/c"); ok {
		t.Error("Top /c found a mount")
	}
	if es, err := Self(); err != nil || len(es) == 0 {
		t.Errorf("Self: %d entries, %v", len(es), err)
	}
}
