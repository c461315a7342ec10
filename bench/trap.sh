#!/usr/bin/env bash
# Trap agent latency, side by side in one run (make bench): single syscalls
# timed inside containers by bench/trapcall, in
#   - runc, no seccomp filter          (the kernel alone)
#   - runc, Docker's default filter    (the same calls, a filter, no agent)
#   - sysbox-runc                      (Docker's filter plus the trap: the
#                                       agent in the fs daemon answers)
# for an untrapped call (getpid), trapped calls the agent lets the kernel
# run (mknod of a fifo, a tmpfs mount, an umount: the "continue" path), and
# calls it emulates (sysinfo, a procfs mount with the container's views).
# Prints p50 and p99 per call, the latency sysbox adds over runc with the
# same filter, and ratios; then the goals: continue under 30 µs added at
# p50, procfs mount under 1 ms at p50, untrapped calls unchanged.
#
# BENCH_SYSBOX_BIN=/path/to/sysbox adds a row for that build: a private fs
# daemon of its own (its agent) and a container run straight through its
# runtime from a bundle, whose seccomp profile allows all but the trapped
# calls (so its baseline is runc without a filter). For a build not
# installed yet; the shared daemons are left alone.
#
# The runc containers get CAP_SYS_ADMIN so the same mounts run there. Each
# environment runs BENCH_ROUNDS times, interleaved; the median round counts.
# Needs root, Docker with sysbox-runc registered, the sysbox daemons, go, bc.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
n=${BENCH_CALLS:-20000}
m=${BENCH_MOUNTS:-500}
rounds=${BENCH_ROUNDS:-3}
image=${BENCH_IMAGE:-sysbox-e2e/busybox:latest}
docker=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
private=${BENCH_SYSBOX_BIN:-}
work=$(mktemp -d /tmp/sysbox-bench-trap.XXXXXX)
chmod 711 "$work" # user-namespaced roots walk to their rootfs
fs_pid=""
cleanup() {
	if [ -n "$fs_pid" ]; then
		kill "$fs_pid" 2>/dev/null || true
		wait "$fs_pid" 2>/dev/null || true
	fi
	# A killed daemon leaves its FUSE mount.
	if grep -q " $work/mnt " /proc/self/mountinfo; then umount -l "$work/mnt" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -C "$top" -o "$work/trapcall" ./bench/trapcall

calls="getpid mknod-continue mount-continue umount-continue sysinfo procfs-mount"
labels=("runc, no filter" "runc, Docker's filter" "sysbox-runc")
# What each sysbox row is measured against: the same filter without the agent.
declare -A baseline=(["sysbox-runc"]="runc, Docker's filter")
declare -A flags=(
	["runc, no filter"]="--runtime runc --cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined"
	["runc, Docker's filter"]="--runtime runc --cap-add SYS_ADMIN --security-opt apparmor=unconfined"
	["sysbox-runc"]="--runtime sysbox-runc"
)
mine="sysbox, BENCH_SYSBOX_BIN"

if [ -n "$private" ]; then
	labels+=("$mine")
	baseline["$mine"]="runc, no filter"
	"$private" fs --mountpoint "$work/mnt" --socket "$work/fs.sock" --trap-socket "$work/seccomp.sock" >"$work/fs.log" 2>&1 &
	fs_pid=$!
	for _ in $(seq 100); do grep -q "seccomp agent ready" "$work/fs.log" && break; sleep 0.1; done
	grep -q "seccomp agent ready" "$work/fs.log" || { echo "private sysbox-fs did not come up:"; cat "$work/fs.log"; exit 1; }
	b=$work/bundle
	bench_bundle "$docker" "$image" "$b" "$work/trapcall" "$private"
	jq --arg n "$n" --arg m "$m" --arg calls "$calls" \
		'.process.args=(["/trapcall","-n",$n,"-m",$m] + ($calls | split(" "))) |
		 .linux.seccomp={"defaultAction":"SCMP_ACT_ALLOW"}' \
		"$b/config.json" >"$b/c" && mv "$b/c" "$b/config.json"
fi

# run_env LABEL ROUND: trapcall's lines, "CALL P50 P99".
run_env() {
	if [ "$1" = "$mine" ]; then
		SYSBOX_FS_SOCKET=$work/fs.sock SYSBOX_TRAP_SOCKET=$work/seccomp.sock \
			"$private" runc --root "$work/state" run --bundle "$work/bundle" "trapbench-$$-$2" </dev/null
		return
	fi
	# shellcheck disable=SC2086 # flags are words
	"$docker" run --rm --network none ${flags[$1]} -v "$work/trapcall:/trapcall:ro" "$image" \
		/trapcall -n "$n" -m "$m" $calls
}

# One line per environment, call and round: "LABEL|CALL|P50|P99".
for r in $(seq "$rounds"); do
	for label in "${labels[@]}"; do
		if ! out=$(run_env "$label" "$r" 2>&1); then
			echo "bench/trap.sh: $label, round $r failed:" >&2
			echo "$out" >&2
			exit 1
		fi
		while read -r call p50 p99; do
			echo "$label|$call|$p50|$p99"
		done <<<"$out" >>"$work/results"
	done
done

# median LABEL CALL FIELD(3=p50, 4=p99): the median round's value.
median() {
	awk -F'|' -v l="$1" -v c="$2" -v f="$3" '$1 == l && $2 == c { print $f }' "$work/results" |
		sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

declare -A p50 p99
for label in "${labels[@]}"; do
	for call in $calls; do
		p50["$label $call"]=$(median "$label" "$call" 3)
		p99["$label $call"]=$(median "$label" "$call" 4)
	done
done

echo "== single syscalls inside containers: p50 / p99 in µs (median of $rounds rounds; $n calls each, $m procfs mounts)"
for call in $calls; do
	echo "  $call"
	for label in "${labels[@]}"; do
		printf '    %-26s p50 %9.2f   p99 %9.2f' "$label" "${p50["$label $call"]}" "${p99["$label $call"]}"
		if [ -n "${baseline[$label]:-}" ]; then
			base=${p50["${baseline[$label]} $call"]}
			v=${p50["$label $call"]}
			printf '   adds %+9.2f µs   %6.1fx %s' "$(echo "$v - $base" | bc -l)" "$(echo "$v / $base" | bc -l)" "${baseline[$label]}"
		fi
		echo
	done
done

verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo ok; else echo MISSED; fi; }
echo "== goals"
for label in "${labels[@]}"; do
	[ -n "${baseline[$label]:-}" ] || continue
	base=${baseline[$label]}
	echo "  $label (against $base)"
	for call in mknod-continue mount-continue umount-continue; do
		a=$(echo "${p50["$label $call"]} - ${p50["$base $call"]}" | bc -l)
		printf '    %-34s %8.2f µs added at p50 (goal < 30 µs): %s\n' "continue path, $call" "$a" "$(verdict "$a < 30")"
	done
	pm=${p50["$label procfs-mount"]}
	printf '    %-34s %8.2f µs at p50 (goal < 1000 µs): %s\n' "emulated procfs mount" "$pm" "$(verdict "$pm < 1000")"
	g=${p50["$label getpid"]}
	g1=${p50["$base getpid"]}
	printf '    %-34s %8.2f µs at p50, %.2fx (goal: unchanged, within 10%%): %s\n' \
		"untrapped call, getpid" "$g" "$(echo "$g / $g1" | bc -l)" "$(verdict "$g <= $g1 * 1.1")"
done

# Where the agent logs at debug level, each trapped call also writes a line.
if pid=$(cat /run/sysbox/fs.pid 2>/dev/null) && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- '--debug'; then
	echo "  (note: the installed sysbox-fs runs with --debug: every trapped call of the sysbox-runc row also wrote a log line)"
fi
