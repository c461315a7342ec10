//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// The fs daemon's per-container views of /proc and /sys (issue 5), through
// real `docker run --runtime=sysbox-runc` containers.

// fsScript prints what the resource views say, a "key=value" line each,
// with the tools people use: free, nproc, top.
const fsScript = `echo uptime=$(head -c 100 /proc/uptime | cut -d' ' -f1)
echo free=$(free -m | awk '/^Mem:/ {print $2}')
echo nproc=$(nproc)
echo processors=$(grep -c ^processor /proc/cpuinfo)
echo online=$(cat /sys/devices/system/cpu/online)
echo memtotal=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
echo top=$(top -bn1 | grep -E '^(MiB|KiB) Mem')`

// fsValues parses fsScript's output.
func fsValues(t *testing.T, out string) map[string]string {
	t.Helper()
	v := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, val, ok := strings.Cut(line, "="); ok {
			v[k] = strings.TrimSpace(val)
		}
	}
	for _, k := range []string{"uptime", "free", "nproc", "processors", "online", "memtotal", "top"} {
		if v[k] == "" {
			t.Fatalf("no %s in:\n%s", k, out)
		}
	}
	return v
}

func atoi(t *testing.T, what, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, s, err)
	}
	return n
}

// hostMemMiB and hostCPUs are what the host itself shows.
func hostMemMiB(t *testing.T) int { return int(hostMemTotal(t) / 1024) }

func hostCPUs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	return len(regexp.MustCompile(`(?m)^processor\s*:`).FindAll(b, -1))
}

// TestFsLimits: memory and CPU views follow `docker run --memory --cpus
// --cpuset-cpus`, and show the host without them; uptime starts at the
// container's start.
func TestFsLimits(t *testing.T) {
	needDaemons(t)
	t.Run("limited", func(t *testing.T) {
		out := sysbox("sh", "-c", fsScript).withFlags("--memory", "512m", "--cpus", "1.5", "--cpuset-cpus", "0").run(t)
		v := fsValues(t, out)
		if up, err := strconv.ParseFloat(v["uptime"], 64); err != nil || up >= 5 {
			t.Errorf("/proc/uptime %q right after start, want under 5 s", v["uptime"])
		}
		// free -m rounds MemTotal (exactly the limit) to MiB.
		if free := atoi(t, "free total", v["free"]); free < 500 || free > 512 {
			t.Errorf("free -m total %d MiB, want about 512", free)
		}
		if mt := atoi(t, "MemTotal", v["memtotal"]); mt != 512*1024 {
			t.Errorf("MemTotal %d kB, want 524288", mt)
		}
		if !strings.Contains(v["top"], "512.0 total") {
			t.Errorf("top's memory line %q, want 512.0 total", v["top"])
		}
		for _, k := range []string{"nproc", "processors"} {
			if v[k] != "1" {
				t.Errorf("%s = %s, want 1", k, v[k])
			}
		}
		if v["online"] != "0" {
			t.Errorf("cpu online %q, want 0", v["online"])
		}
		t.Logf("with limits: %v", v)
	})
	t.Run("unlimited", func(t *testing.T) {
		v := fsValues(t, sysbox("sh", "-c", fsScript).run(t))
		host := hostMemMiB(t)
		if free := atoi(t, "free total", v["free"]); free < host-1 || free > host+1 {
			t.Errorf("free -m total %d MiB, want the host's %d", free, host)
		}
		cpus := strconv.Itoa(hostCPUs(t))
		for _, k := range []string{"nproc", "processors"} {
			if v[k] != cpus {
				t.Errorf("%s = %s, want the host's %s", k, v[k], cpus)
			}
		}
		t.Logf("without limits: %v (host: %d MiB, %s CPUs)", v, host, cpus)
	})
}

// fsPair starts two idle containers, to tell per-container values from
// shared ones.
func fsPair(t *testing.T) (a, b string) {
	t.Helper()
	return sysbox("sleep", "infinity").start(t), sysbox("sleep", "infinity").start(t)
}

// readSysctl reads a host sysctl (a /proc/sys path).
func readSysctl(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// keepHost fails the test if the host's sysctl at path is not before, and
// puts it back.
func keepHost(t *testing.T, path, before string) {
	t.Helper()
	if after := readSysctl(t, path); after != before {
		t.Errorf("the host's %s changed from %s to %s", path, before, after)
		if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
			t.Errorf("restore %s: %v", path, err)
		}
	}
}

// TestFsSysctls: per-container sysctls, the kernel's own namespaced ones,
// and refusals.
func TestFsSysctls(t *testing.T) {
	needDaemons(t)
	a, b := fsPair(t)

	t.Run("pid_max", func(t *testing.T) {
		const path = "/proc/sys/kernel/pid_max"
		host := readSysctl(t, path)
		inside(t, a, "sysctl -w kernel.pid_max=123456")
		inside(t, b, "sysctl -w kernel.pid_max=234567")
		if got := dockerExec(t, a, "cat", path); got != "123456" {
			t.Errorf("container a reads pid_max %s after setting 123456", got)
		}
		if got := dockerExec(t, b, "cat", path); got != "234567" {
			t.Errorf("container b reads pid_max %s after setting 234567", got)
		}
		if got := dockerExec(t, a, "sysctl", "-n", "kernel.pid_max"); got != "123456" {
			t.Errorf("sysctl -n kernel.pid_max in a = %s, want 123456", got)
		}
		keepHost(t, path, host)
		// A fresh container starts from the host's value.
		if got := sysbox("cat", path).run(t); got != host {
			t.Errorf("a new container reads pid_max %s, want the host's %s", got, host)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		const path = "/proc/sys/kernel/pid_max"
		before := dockerExec(t, a, "cat", path)
		// bash names the errno (dash says "I/O error" for any failed
		// write, even on the host's own procfs).
		for _, value := range []string{"abc", "99999999", "12 34"} {
			out, err := insideErr(t, a, "bash -c 'echo "+value+" > "+path+"'")
			if err == nil || !strings.Contains(out, "Invalid argument") {
				t.Errorf("echo %s > pid_max: %v %q, want Invalid argument (EINVAL)", value, err, out)
			}
		}
		if got := dockerExec(t, a, "cat", path); got != before {
			t.Errorf("pid_max %s after refused writes, was %s", got, before)
		}
		for _, cmd := range []string{"chown 1 " + path, "chown 0:1 " + path, "chmod 600 " + path} {
			out, err := insideErr(t, a, cmd)
			if err == nil || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("%s as the container's root: %v %q, want Operation not permitted (EPERM)", cmd, err, out)
			}
		}
		if out, err := insideErr(t, a, "echo 1 > /proc/sys/kernel/cap_last_cap"); err == nil {
			t.Errorf("writing the read-only kernel.cap_last_cap succeeded: %s", out)
		}
	})

	t.Run("nf_conntrack_max", func(t *testing.T) {
		const path = "/proc/sys/net/netfilter/nf_conntrack_max"
		if _, err := os.Stat(path); err != nil {
			t.Skipf("the host has no conntrack (%v): nothing to emulate", err)
		}
		host := readSysctl(t, path)
		n := atoi(t, "host nf_conntrack_max", host)
		lower := strconv.Itoa(max(n/2, 1024))
		inside(t, a, "sysctl -w net.netfilter.nf_conntrack_max="+lower)
		if got := dockerExec(t, a, "cat", path); got != lower {
			t.Errorf("container reads nf_conntrack_max %s after setting %s", got, lower)
		}
		if got := dockerExec(t, b, "cat", path); got != host {
			t.Errorf("the other container reads nf_conntrack_max %s, want the host's %s", got, host)
		}
		keepHost(t, path, host)
	})

	t.Run("ip_forward", func(t *testing.T) {
		// Namespaced: the write must reach the container's own network
		// namespace, as the kernel sees it from outside the view.
		const path = "/proc/sys/net/ipv4/ip_forward"
		host := readSysctl(t, path)
		want := "1"
		if dockerExec(t, a, "cat", path) == "1" {
			want = "0"
		}
		otherBefore := dockerExec(t, b, "cat", path)
		inside(t, a, "sysctl -w net.ipv4.ip_forward="+want)
		if got := dockerExec(t, a, "cat", path); got != want {
			t.Errorf("container reads ip_forward %s after setting %s", got, want)
		}
		pid := docker(t, "inspect", "-f", "{{.State.Pid}}", a)
		if got := run(t, "nsenter", "--net=/proc/"+pid+"/ns/net", "cat", path); got != want {
			t.Errorf("the kernel's ip_forward in the container's netns is %s, want %s", got, want)
		}
		if got := dockerExec(t, a, "cat", "/proc/sys/net/ipv4/conf/all/forwarding"); got != want {
			t.Errorf("conf/all/forwarding %s, want %s (the kernel ties it to ip_forward)", got, want)
		}
		if got := dockerExec(t, b, "cat", path); got != otherBefore {
			t.Errorf("the other container's ip_forward changed from %s to %s", otherBefore, got)
		}
		keepHost(t, path, host)
	})
}

// TestFsMachine: the machine's identity and the host's debug filesystems.
func TestFsMachine(t *testing.T) {
	needDaemons(t)
	a, b := fsPair(t)

	t.Run("product_uuid", func(t *testing.T) {
		const path = "/sys/devices/virtual/dmi/id/product_uuid"
		host, hostErr := os.ReadFile(path)
		ua, errA := insideErr(t, a, "cat "+path)
		if hostErr != nil {
			// No DMI tables on this machine (a VM without SMBIOS): the
			// container's sysfs has no DMI either, and the view adds none.
			if _, err := os.Stat("/sys/class/dmi"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("no %s on the host (%v), yet /sys/class/dmi: %v", path, hostErr, err)
			}
			if errA == nil {
				t.Errorf("the host has no DMI, yet the container reads product_uuid %s", ua)
			}
			t.Logf("host has no DMI (%v): the container has none either (%v)", hostErr, errA)
			return
		}
		ua2, errA2 := insideErr(t, a, "cat "+path)
		ub, errB := insideErr(t, b, "cat "+path)
		if errA != nil || errA2 != nil || errB != nil {
			t.Fatalf("product_uuid: %v %s / %v %s / %v %s", errA, ua, errA2, ua2, errB, ub)
		}
		uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
		switch {
		case !uuid.MatchString(ua):
			t.Errorf("product_uuid %q is not a UUID", ua)
		case ua != ua2:
			t.Errorf("product_uuid changed between reads: %s, %s", ua, ua2)
		case ua == ub:
			t.Errorf("two containers share product_uuid %s", ua)
		case strings.EqualFold(ua, strings.TrimSpace(string(host))):
			t.Errorf("the container shows the host's product_uuid %s", ua)
		}
	})

	t.Run("sys_kernel", func(t *testing.T) {
		for _, dir := range []string{"debug", "tracing", "security"} {
			p := "/sys/kernel/" + dir
			out, err := insideErr(t, a, "test ! -e "+p+" || ls -A "+p)
			if err != nil || out != "" {
				t.Errorf("%s inside: %v %q, want empty", p, err, out)
			}
		}
	})
}

// fsTools builds bench/procread (static) into a directory a container can
// bind, and returns the directory.
func fsTools(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "procread"), "./bench/procread")
	cmd.Dir = env.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build procread: %v\n%s", err, out)
	}
	return dir
}

// fsFiles are the emulated files a container reads.
var fsFiles = []string{
	"/proc/uptime", "/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/loadavg", "/proc/diskstats",
	"/proc/swaps", "/proc/sys/kernel/pid_max", "/proc/sys/kernel/hostname", "/proc/sys/net/core/somaxconn",
	"/proc/sys/net/ipv4/ip_forward", "/sys/devices/system/cpu/online",
}

// TestFsSendfile: tools that copy with sendfile(2) print the right content.
// The kernel splices FUSE direct-I/O files through the page cache (see
// fs/splice.go): sendfile must copy exactly or fail with EINVAL, so that
// its caller falls back to read(2); never copy nothing or garbage. /proc's
// resource views are read through the page cache (fs/store.go): sendfile
// copies them.
func TestFsSendfile(t *testing.T) {
	needDaemons(t)
	uptime := regexp.MustCompile(`^\d+\.\d\d \d+\.\d\d$`)

	t.Run("busybox", func(t *testing.T) {
		out := container{Runtime: RuntimeSysbox, Image: ImageBusybox, Cmd: []string{
			"sh", "-c",
			"cat /proc/uptime; cat /proc/meminfo | head -1; cat /proc/sys/kernel/pid_max; cat /proc/uptime | wc -c",
		}}.run(t)
		lines := strings.Split(out, "\n")
		if len(lines) != 4 || !uptime.MatchString(lines[0]) || !strings.HasPrefix(lines[1], "MemTotal:") ||
			lines[2] != readSysctl(t, "/proc/sys/kernel/pid_max") || atoi(t, "wc -c", strings.TrimSpace(lines[3])) < 10 {
			t.Errorf("busybox cat (sendfile) printed:\n%s", out)
		}
	})

	t.Run("coreutils", func(t *testing.T) {
		name := sysbox("sleep", "infinity").start(t)
		for _, tc := range []struct{ cmd, want string }{
			{"busybox cat /proc/uptime", uptime.String()},
			{"cat /proc/uptime", uptime.String()},
			{"tail -n 1 /proc/uptime", uptime.String()},
			{"tail -c 3 /proc/sys/kernel/pid_max | wc -c", `^3$`},
			{"tail -n 1 /proc/meminfo", `^\S+:\s+\d+( kB)?$`},
			{"head -n 1 /proc/meminfo", `^MemTotal:\s+\d+ kB$`},
			{"cp /proc/uptime /tmp/u && cat /tmp/u", uptime.String()},
		} {
			out := inside(t, name, tc.cmd)
			if !regexp.MustCompile(tc.want).MatchString(out) {
				t.Errorf("%s printed %q, want %s", tc.cmd, out, tc.want)
			}
		}
		// wc -c counts what read(2) returns; the size stat reports is
		// sysfs-like (a page), an estimate tools read through.
		if got, want := inside(t, name, "wc -c < /proc/meminfo"), inside(t, name, "cat /proc/meminfo | wc -c"); got != want {
			t.Errorf("wc -c < /proc/meminfo = %s, cat | wc -c = %s", got, want)
		}
	})

	t.Run("raw", func(t *testing.T) {
		tools := fsTools(t)
		out := container{
			Runtime: RuntimeSysbox, Image: ImageBusybox, Flags: []string{"-v", tools + ":/fsbin:ro"},
			Cmd: append([]string{"/fsbin/procread", "-check"}, fsFiles...),
		}.run(t)
		for _, line := range strings.Split(out, "\n") {
			// /proc's resource views are stored files, which sendfile
			// copies (an empty one, diskstats of a container that did
			// no I/O, is empty both ways); the others may refuse.
			stored := strings.HasPrefix(line, "/proc/") && !strings.HasPrefix(line, "/proc/sys/")
			empty := strings.Contains(line, " read=0 ") && strings.HasSuffix(line, " sendfile=empty")
			switch {
			case stored && !strings.HasSuffix(line, " sendfile=ok") && !empty:
				t.Errorf("sendfile of a stored file: %s", line)
			case !stored && !strings.Contains(line, "sendfile=einval") && !strings.Contains(line, "sendfile=ok"):
				t.Errorf("sendfile: %s", line)
			}
		}
		t.Logf("procread -check:\n%s", out)
	})
}

// fsDaemonRSS is the running fs daemon's resident memory, in KiB: that of
// the install the harness reuses, which keeps a pid file, or the one in
// SYSBOX_E2E_FS_PIDFILE (an engine whose runtime is pointed at a daemon of
// one's own with SYSBOX_FS_SOCKET).
func fsDaemonRSS(t *testing.T) int {
	t.Helper()
	pidFile := ipc.RunDir + "/fs.pid"
	if f := os.Getenv("SYSBOX_E2E_FS_PIDFILE"); f != "" {
		pidFile = f
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("fs daemon pid: %v", err)
	}
	b, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/status")
	if err != nil {
		t.Fatalf("fs daemon status: %v", err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in the fs daemon's status")
	}
	return atoi(t, "VmRSS", string(m[1]))
}

// TestFsLoad: 20 containers with 4 readers each loop over the emulated files
// for 30 s (SYSBOX_E2E_FS_LOAD changes it): no error, no hang, and the
// daemon's memory stays flat.
func TestFsLoad(t *testing.T) {
	needDaemons(t)
	dur := 30 * time.Second
	if s := os.Getenv("SYSBOX_E2E_FS_LOAD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	const containers, readers = 20, 4
	tools := fsTools(t)
	names := make([]string, containers)
	var wg sync.WaitGroup
	for i := range names {
		names[i] = containerName(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := container{
				Runtime: RuntimeSysbox, Image: ImageBusybox, Flags: []string{"-v", tools + ":/fsbin:ro"},
				Cmd: []string{"sleep", "3600"},
			}
			if out, err := dockerErr(t, c.args(names[i], "-d")...); err != nil {
				t.Errorf("start %s: %v\n%s", names[i], err, out)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	rss0 := fsDaemonRSS(t)

	// Readers in every container at once, each bounded: a hang fails the
	// test instead of stalling the run.
	type result struct {
		name, out string
		err       error
	}
	results := make(chan result, containers)
	ctx, cancel := context.WithTimeout(context.Background(), dur+90*time.Second)
	defer cancel()
	start := time.Now()
	for _, name := range names {
		go func() {
			args := append([]string{"exec", name, "/fsbin/procread", "-load", dur.String(), "-readers", strconv.Itoa(readers)}, fsFiles...)
			out, err := exec.CommandContext(ctx, env.dockerCLI, args...).CombinedOutput()
			results <- result{name, strings.TrimSpace(string(out)), err}
		}()
	}
	// The daemon's memory once the load is on (caches, stacks, buffers in
	// use), against the end: flat means no growth with the load's length.
	time.Sleep(min(dur/4, 10*time.Second))
	rssWarm := fsDaemonRSS(t)
	total := 0
	for range names {
		r := <-results
		var reads, errs int
		if _, err := fmt.Sscanf(tail(r.out, 1), "reads %d errors %d", &reads, &errs); err != nil || r.err != nil || errs > 0 || reads == 0 {
			t.Errorf("%s: procread -load: %v\n%s", r.name, r.err, r.out)
		}
		total += reads
	}
	took := time.Since(start)
	rssEnd := fsDaemonRSS(t)
	t.Logf("%d containers x %d readers for %v: %d reads (%.0f/s) in %v; fs daemon RSS %d KiB before, %d KiB warm, %d KiB at the end",
		containers, readers, dur, total, float64(total)/dur.Seconds(), took.Round(time.Millisecond), rss0, rssWarm, rssEnd)
	if took > dur+30*time.Second {
		t.Errorf("the readers took %v for a %v loop", took, dur)
	}
	if rssEnd > rssWarm+16*1024 {
		t.Errorf("fs daemon RSS grew from %d KiB to %d KiB under load", rssWarm, rssEnd)
	}
	// Still quick after the load.
	begin := time.Now()
	dockerExec(t, names[0], "cat", "/proc/uptime")
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("reading /proc/uptime after the load took %v", d)
	}
}

// uptimeFields parses a /proc/uptime line.
func uptimeFields(t testing.TB, line string) (up, idle float64) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("%q is not an uptime line", line)
	}
	up, err1 := strconv.ParseFloat(f[0], 64)
	idle, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("%q is not an uptime line", line)
	}
	return up, idle
}

// seekScript opens each emulated /proc file once and reads it twice, with
// lseek(fd, 0) in between, as procps does (top, free -s, vmstat keep
// /proc/meminfo, /proc/stat and /proc/loadavg open): the second read must
// be whole and fresh. It prints, per file, the seek's result and the first
// line of each read; then the same for a sysctl another fd writes between
// the reads.
const seekScript = `
use strict;
sub slurp { my ($fh) = @_; my ($all, $buf) = (""); while (sysread($fh, $buf, 65536)) { $all .= $buf } return $all }
sub lines { my ($s) = @_; my @l = split /\n/, $s; return (scalar(@l), $l[0] // "") }
for my $f (qw(/proc/uptime /proc/loadavg /proc/meminfo /proc/stat /proc/cpuinfo /proc/swaps /proc/diskstats)) {
	open(my $fh, "<", $f) or die "open $f: $!";
	my ($na, $la) = lines(slurp($fh));
	select(undef, undef, undef, 0.3);
	my $ok = sysseek($fh, 0, 0) ? "ok" : "failed: $!";
	my ($nb, $lb) = lines(slurp($fh));
	print "$f seek=$ok lines=$na/$nb first=[$la] second=[$lb]\n";
	close $fh;
}
my $p = "/proc/sys/kernel/pid_max";
open(my $rd, "<", $p) or die "open $p: $!";
my (undef, $before) = lines(slurp($rd));
open(my $wr, ">", $p) or die "open $p for writing: $!";
syswrite($wr, "54321\n") or die "write $p: $!";
close $wr;
my $ok = sysseek($rd, 0, 0) ? "ok" : "failed: $!";
my (undef, $after) = lines(slurp($rd));
print "$p seek=$ok first=[$before] second=[$after]\n";
`

// TestFsSeek: an emulated file read, rewound with lseek(fd, 0) and read
// again gives its whole content again, fresh (procps's pattern), as
// procfs does; a file that cannot seek would make procps 3.3's top stop
// with "bad data in /proc/loadavg".
func TestFsSeek(t *testing.T) {
	needDaemons(t)
	out := sysbox("perl", "-e", seekScript).withFlags("--memory", "256m").run(t)
	t.Logf("%s", out)
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f, rest, ok := strings.Cut(l, " "); ok {
			lines[f] = rest
		}
	}
	re := regexp.MustCompile(`^seek=(\S+)(?: lines=(\d+)/(\d+))? first=\[(.*)\] second=\[(.*)\]$`)
	for _, f := range []string{"/proc/uptime", "/proc/loadavg", "/proc/meminfo", "/proc/stat", "/proc/cpuinfo", "/proc/swaps", "/proc/diskstats", "/proc/sys/kernel/pid_max"} {
		m := re.FindStringSubmatch(lines[f])
		if m == nil {
			t.Errorf("%s: no result in:\n%s", f, out)
			continue
		}
		if m[1] != "ok" {
			t.Errorf("%s: lseek(fd, 0) %s", f, m[1])
		}
		if m[2] != m[3] {
			t.Errorf("%s: %s lines, then %s after lseek", f, m[2], m[3])
		}
		if m[5] == "" && f != "/proc/diskstats" {
			t.Errorf("%s: nothing read after lseek", f)
		}
		switch f {
		case "/proc/uptime":
			a, _ := uptimeFields(t, m[4])
			b, _ := uptimeFields(t, m[5])
			// Fresh within the refresh of a held file (0.1 s).
			if b < a+0.15 {
				t.Errorf("/proc/uptime %.2f, then %.2f 0.3 s later: the re-read is not fresh", a, b)
			}
		case "/proc/meminfo":
			if m[5] != "MemTotal:         262144 kB" {
				t.Errorf("/proc/meminfo re-read starts %q, want the 256m container's MemTotal", m[5])
			}
		case "/proc/sys/kernel/pid_max":
			if m[5] != "54321" || m[4] == m[5] {
				t.Errorf("pid_max %q, then %q after another fd wrote 54321", m[4], m[5])
			}
		}
	}
}
