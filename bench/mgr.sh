#!/usr/bin/env bash
# Manager benchmarks (make bench), from its Go benchmarks (mgr/bench_test.go):
#  1. id range allocation latency: one at a time (BenchmarkAllocate) and 8 at
#     once (BenchmarkAllocateParallel); each is an in-memory search plus one
#     write(2) to the journal, which makes it survive kill -9; a committer
#     applies the journal to bbolt in fsynced transactions on the disk that
#     holds $BENCH_TMPDIR, many allocations a commit (mgr/journal.go says
#     why a power loss can take no more than the last moments, harmlessly);
#  2. the daemon's resident memory with 200 registered containers
#     (BenchmarkDaemonRSS200, a real sysbox-mgr process; needs root).
# Prints "name  value  (goal)"; a missed goal is printed as such, not hidden.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
allocs=${BENCH_ALLOCS:-3000}    # allocations measured
status_n=${BENCH_STATUS_RUNS:-20} # status calls in the RSS benchmark (~40 ms each)
goal_p50_us=100
# Measure on a disk, as the data root is (/tmp may be tmpfs, which would
# flatter both the journal write and the committer's fsyncs).
tmp_parent=${BENCH_TMPDIR:-/var/tmp}
go=${GO:-go}

work=$(mktemp -d "$tmp_parent/sysbox-bench-mgr.XXXXXX")
trap 'rm -rf "$work"' EXIT
fstype=$(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work")

run_bench() { # regex benchtime -> benchmark lines on stdout
	(cd "$top" && TMPDIR=$work "$go" test -run '^$' -bench "$1" -benchtime "$2" -count 1 ./mgr/) >"$work/out" 2>&1 || {
		cat "$work/out" >&2
		echo "bench/mgr.sh: go test -bench '$1' failed" >&2
		exit 1
	}
	grep '^Benchmark' "$work/out" || true
}

# metric NAME UNIT: the value before UNIT on the line of benchmark NAME
# (the -N GOMAXPROCS suffix ignored).
metric() {
	awk -v name="$1" -v unit="$2" '{
		b = $1; sub(/-[0-9]+$/, "", b)
		if (b != name) next
		for (i = 3; i <= NF; i++) if ($i == unit) { print $(i-1); exit }
	}' "$work/lines"
}

row() { # name value [goal]
	if [ -n "${3:-}" ]; then
		printf '  %-46s %14s   %s\n' "$1" "$2" "$3"
	else
		printf '  %-46s %14s\n' "$1" "$2"
	fi
}

echo "== sysbox-mgr: id range allocation ($allocs allocations; database on $tmp_parent, $fstype)"
run_bench '^BenchmarkAllocate(Parallel)?$' "${allocs}x" >"$work/lines"
p50=$(metric BenchmarkAllocate p50-us)
p99=$(metric BenchmarkAllocate p99-us)
pp50=$(metric BenchmarkAllocateParallel p50-us)
pns=$(metric BenchmarkAllocateParallel ns/op)
per_commit=$(metric BenchmarkAllocate allocs/commit)
pper_commit=$(metric BenchmarkAllocateParallel allocs/commit)
if [ -z "$p50" ]; then
	echo "bench/mgr.sh: no p50-us from BenchmarkAllocate:" >&2
	cat "$work/out" >&2
	exit 1
fi
verdict=$(awk -v v="$p50" -v g="$goal_p50_us" 'BEGIN { print (v + 0 < g + 0) ? "met" : "MISSED" }')
row "allocation latency p50, one at a time" "$(printf '%.0f µs' "$p50")" "(goal: < $goal_p50_us µs: $verdict)"
row "allocation latency p99, one at a time" "$(printf '%.0f µs' "$p99")"
[ -n "$pp50" ] && row "allocation latency p50, 8 at once" "$(printf '%.0f µs' "$pp50")"
[ -n "$pns" ] && row "allocation throughput, 8 at once" "$(awk -v n="$pns" 'BEGIN { printf "%.0f µs/alloc", n / 1000 }')"
[ -n "$per_commit" ] && row "allocations per bbolt commit, one at a time" "$(printf '%.0f' "$per_commit")"
[ -n "$pper_commit" ] && row "allocations per bbolt commit, 8 at once" "$(printf '%.0f' "$pper_commit")"
case "$fstype" in
tmpfs | ramfs) echo "  note: $tmp_parent is on $fstype: writes and fsyncs cost next to nothing there; set BENCH_TMPDIR to a dir on the data root's disk" ;;
esac

echo "== sysbox-mgr: memory"
if [ "$(id -u)" != 0 ]; then
	row "manager RSS, 200 containers" "skipped" "(needs root)"
	exit 0
fi
run_bench '^BenchmarkDaemonRSS200$' "${status_n}x" >"$work/lines"
rss0=$(metric BenchmarkDaemonRSS200 rss0-KiB)
rss200=$(metric BenchmarkDaemonRSS200 rss200-KiB)
rssst=$(metric BenchmarkDaemonRSS200 rss-after-status-KiB)
stns=$(metric BenchmarkDaemonRSS200 ns/op)
if [ -z "$rss200" ]; then
	echo "bench/mgr.sh: no rss200-KiB from BenchmarkDaemonRSS200:" >&2
	cat "$work/out" >&2
	exit 1
fi
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
row "manager RSS, idle" "$(mib "$rss0")"
row "manager RSS, 200 registered containers" "$(mib "$rss200")" "(no goal set)"
[ -n "$rssst" ] && row "manager RSS, 200 containers, after status x$status_n" "$(mib "$rssst")"
[ -n "$stns" ] && row "status call, 200 containers" "$(awk -v n="$stns" 'BEGIN { printf "%.1f ms", n / 1e6 }')"
exit 0
