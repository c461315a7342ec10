package fs

import (
	"errors"
	"syscall"
	"testing"
)

func TestSetSysctl(t *testing.T) {
	pidMax := sysctls["kernel/pid_max"]
	printk := sysctls["kernel/printk"]
	ptrace := sysctls["kernel/yama/ptrace_scope"]
	vs, _, _ := sysctlFor("net/ipv4/vs/conntrack")
	tests := []struct {
		name    string
		spec    sysctlSpec
		cur, in string
		want    string
		err     error
	}{
		{"number", pidMax, "32768", "65536\n", "65536", nil},
		{"spaces", pidMax, "32768", "  4194304 \n", "4194304", nil},
		{"not a number", pidMax, "32768", "abc\n", "", syscall.EINVAL},
		{"hex is not taken", pidMax, "32768", "0x1000", "", syscall.EINVAL},
		{"above the max", pidMax, "32768", "4194305", "", syscall.EINVAL},
		{"below the min", pidMax, "32768", "300", "", syscall.EINVAL},
		{"too many numbers", pidMax, "32768", "1000 2000", "", syscall.EINVAL},
		{"empty write changes nothing", pidMax, "32768", "\n", "32768", nil},
		{"all four", printk, "4\t4\t1\t7", "7 4 1 7\n", "7\t4\t1\t7", nil},
		{"fewer numbers set the first", printk, "4\t4\t1\t7", "3", "3\t4\t1\t7", nil},
		{"negative allowed", sysctls["kernel/panic"], "0", "-1", "-1", nil},
		{"bool range", sysctls["kernel/panic_on_oops"], "0", "2", "", syscall.EINVAL},
		{"ptrace scope up to 3", ptrace, "1", "3", "3", nil},
		{"ptrace scope 3 is locked", ptrace, "3", "1", "", syscall.EINVAL},
		{"ptrace scope 3 again", ptrace, "3", "3", "3", nil},
		{"inferred int", vs, "0", "1", "1", nil},
		{"inferred int rejects text", vs, "0", "on", "", syscall.EINVAL},
		{"inferred string", vs, "rr", "wrr\n", "wrr", nil},
		{"file-max takes a long", sysctls["fs/file-max"], "100", "9223372036854775807", "9223372036854775807", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := setSysctl(tt.spec, tt.cur, tt.in)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("setSysctl(%q, %q) = %q, %v; want %q, %v", tt.cur, tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestSysctlClass(t *testing.T) {
	tests := []struct {
		rel    string
		stored bool
		netns  bool
		key    string
		ns     nsKind
	}{
		{"kernel/pid_max", true, false, "kernel/pid_max", nsHost},
		{"fs/protected_fifos", true, false, "fs/protected_fifos", nsHost},
		{"vm/overcommit_memory", true, false, "vm/overcommit_memory", nsHost},
		{"net/netfilter/nf_conntrack_max", true, true, "net/netfilter/nf_conntrack_max", nsNet},
		{"net/nf_conntrack_max", true, true, "net/netfilter/nf_conntrack_max", nsNet},
		{"net/netfilter/nf_conntrack_tcp_timeout_established", true, true, "net/netfilter/nf_conntrack_tcp_timeout_established", nsNet},
		{"net/ipv4/vs/expire_nodest_conn", true, true, "net/ipv4/vs/expire_nodest_conn", nsNet},
		{"net/ipv4/neigh/default/gc_thresh3", true, true, "net/ipv4/neigh/default/gc_thresh3", nsNet},
		{"net/ipv4/ip_forward", false, false, "", nsNet},
		{"net/netfilter/nf_conntrack_count", false, false, "", nsNet},
		{"kernel/hostname", false, false, "", nsUTS},
		{"kernel/shmmax", false, false, "", nsIPC},
		{"fs/mqueue/msg_max", false, false, "", nsIPC},
		{"kernel/cap_last_cap", false, false, "", nsHost},
		{"vm/swappiness", false, false, "", nsHost},
	}
	for _, tt := range tests {
		spec, key, ok := sysctlFor(tt.rel)
		if ok != tt.stored || spec.netns != tt.netns || key != tt.key {
			t.Errorf("sysctlFor(%q) = %+v, %q, %v", tt.rel, spec, key, ok)
		}
		if got := nsOf(tt.rel); got != tt.ns {
			t.Errorf("nsOf(%q) = %v, want %v", tt.rel, got, tt.ns)
		}
	}
}

func TestNormSeed(t *testing.T) {
	for in, want := range map[string]string{
		"32768\n":      "32768",
		"4\t4\t1\t7\n": "4\t4\t1\t7",
		"4 4  1 7\n":   "4\t4\t1\t7",
		"some text\n":  "some text",
	} {
		if got := normSeed([]byte(in)); got != want {
			t.Errorf("normSeed(%q) = %q, want %q", in, got, want)
		}
	}
}
