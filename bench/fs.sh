#!/usr/bin/env bash
# /proc read latency, side by side in one run (make bench): open+read+close
# of /proc/uptime and /proc/meminfo inside a sysbox-runc container (the fs
# daemon's FUSE views), inside a runc container (the kernel's procfs), and
# through lxcfs (Debian's package) on the host. p50 and p99, with ratios.
#
# With SYSBOX_FS_SOCKET (and SYSBOX_TRAP_SOCKET) set, the sysbox case runs
# through the runtime itself (SYSBOX_BIN, default bin/sysbox: `runc run` on
# a bundle made from the image) against the fs daemon on that socket: how to
# measure a daemon of one's own while the installed one serves others.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
n=${BENCH_READS:-2000}
image=${BENCH_IMAGE:-sysbox-e2e/minimal:latest}
docker=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
work=$(mktemp -d /tmp/sysbox-bench-fs.XXXXXX)
chmod 755 "$work"
lxcfs_pid=""
floor_pid=""
bundle_id=""
cleanup() {
	if [ -n "$bundle_id" ]; then
		"$sysbox_bin" runc --root "$work/state" delete -f "$bundle_id" >/dev/null 2>&1 || true
	fi
	if [ -n "$lxcfs_pid" ]; then
		kill "$lxcfs_pid" 2>/dev/null || true
		wait "$lxcfs_pid" 2>/dev/null || true
		umount -l "$work/lxcfs" 2>/dev/null || true
	fi
	if [ -n "$floor_pid" ]; then
		kill "$floor_pid" 2>/dev/null || true
		wait "$floor_pid" 2>/dev/null || true
		umount -l "$work/floor" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -C "$top" -o "$work/procread" ./bench/procread
files="/proc/uptime /proc/meminfo"
# Sysctls come through directory binds (a lookup per path component unless
# cached) and, for net.*, the container's network namespace; lxcfs has none
# of these (nor, by default, loadavg).
more="/proc/loadavg /proc/sys/kernel/pid_max /proc/sys/net/core/somaxconn"

declare -A p50 p99
measure() { # label, command...
	local label=$1
	shift
	while read -r path a b; do
		p50["$label $path"]=$a
		p99["$label $path"]=$b
	done < <("$@")
}
measure "runc (kernel procfs)" "$docker" run --rm --network none --runtime runc -v "$work/procread:/procread:ro" "$image" /procread -n "$n" $files $more
sysbox_bin=${SYSBOX_BIN:-$top/bin/sysbox}
# sysbox_bundle runs procread in a bundle through the runtime directly.
sysbox_bundle() {
	local b=$work/bundle
	bench_bundle "$docker" "$image" "$b" "$work/procread" "$sysbox_bin"
	# shellcheck disable=SC2086 # $files is a list
	jq --arg n "$n" '.process.args = ["/procread", "-n", $n] + $ARGS.positional' \
		--args $files $more <"$b/config.json" >"$b/config.new"
	mv "$b/config.new" "$b/config.json"
	"$sysbox_bin" runc --root "$work/state" run --bundle "$b" "$bundle_id" </dev/null
	"$sysbox_bin" runc --root "$work/state" delete -f "$bundle_id" >/dev/null 2>&1 || true
}
if [ -n "${SYSBOX_FS_SOCKET:-}" ]; then
	bundle_id=bench-fs-$$
	measure "sysbox-runc (sysbox-fs)" sysbox_bundle
else
	measure "sysbox-runc (sysbox-fs)" "$docker" run --rm --network none --runtime sysbox-runc -v "$work/procread:/procread:ro" "$image" /procread -n "$n" $files $more
fi
if command -v lxcfs >/dev/null; then
	mkdir -p "$work/lxcfs"
	lxcfs "$work/lxcfs" >"$work/lxcfs.log" 2>&1 &
	lxcfs_pid=$!
	for _ in $(seq 50); do [ -e "$work/lxcfs/proc/uptime" ] && break; sleep 0.1; done
	lx=""
	for f in $files; do lx="$lx $work/lxcfs$f"; done
	[ -e "$work/lxcfs/proc/uptime" ] || { echo "lxcfs did not come up:"; cat "$work/lxcfs.log"; }
	measure "lxcfs" sh -c "\"$work/procread\" -n $n $lx | sed 's#$work/lxcfs##'"
fi

# The FUSE floor: a server that renders nothing (bench/fusefloor, same
# library and loop), read from the host: what the round trips of an
# open+read+close cost on this machine, whoever serves them.
go build -C "$top" -o "$work/fusefloor" ./bench/fusefloor
mkdir -p "$work/floor"
"$work/fusefloor" "$work/floor" 2>"$work/floor.log" &
floor_pid=$!
for _ in $(seq 50); do [ -e "$work/floor/f" ] && break; sleep 0.1; done
read -r _ floor50 floor99 < <("$work/procread" -n "$n" "$work/floor/f")

for f in $files $more; do
	base=${p50["runc (kernel procfs) $f"]}
	echo "== open+read+close of $f ($n reads)"
	for label in "runc (kernel procfs)" "sysbox-runc (sysbox-fs)" "lxcfs"; do
		v=${p50["$label $f"]:-}
		[ -n "$v" ] || continue
		printf '  %-26s p50 %8.1f µs   p99 %8.1f µs   %5.1fx procfs\n' "$label" "$v" "${p99["$label $f"]}" "$(echo "$v / $base" | bc -l)"
	done
done
echo "== the FUSE floor: open+read+close of a fixed 18-byte direct-I/O file from a server that renders nothing"
printf '  %-26s p50 %8.1f µs   p99 %8.1f µs   %5.1fx procfs (/proc/uptime)\n' "bench/fusefloor" "$floor50" "$floor99" "$(echo "$floor50 / ${p50["runc (kernel procfs) /proc/uptime"]}" | bc -l)"
echo "  (goal: sysbox-fs p50 within 5x of the kernel's procfs, and faster than lxcfs. /proc's"
echo "   resource views are stored files, one round trip (fs/store.go); the sysctls are direct-I/O"
echo "   files, which cannot beat the floor: three round trips)"
