#!/usr/bin/env bash
# Runtime benchmarks, side by side in one run (make bench):
#  1. create+start+delete of a trivial container (`run` of /bin/true) through
#     sysbox-runc, runc with a user namespace, and plain runc;
#  2. `docker run --rm IMG true` with sysbox-runc and with runc.
# Prints medians and ratios. Needs root, hyperfine, busybox-static, runc,
# a running dockerd with sysbox-runc registered, and the sysbox daemons.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
bin=${SYSBOX_BIN:-$top/bin}
runs=${BENCH_RUNS:-20}
image=${BENCH_IMAGE:-sysbox-e2e/minimal:latest}
docker=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
runc=${RUNC:-$(command -v runc)}

work=$(mktemp -d /tmp/sysbox-bench.XXXXXX)
chmod 711 "$work" # user-namespaced roots walk to their rootfs
cleanup() {
	for r in "$work"/root-*; do
		[ -d "$r" ] || continue
		for id in $(ls "$r" 2>/dev/null); do
			"$runc" --root "$r" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
	rm -rf "$work"
}
trap cleanup EXIT

# A busybox bundle: the same rootfs for every runtime.
mkbundle() { # dir, spec-filter
	local b=$1
	mkdir -p "$b/rootfs"/{bin,proc,sys,dev,etc,tmp}
	cp "$(command -v busybox)" "$b/rootfs/bin/busybox"
	ln -sf busybox "$b/rootfs/bin/true"
	ln -sf busybox "$b/rootfs/bin/sh"
	(cd "$b" && "$runc" spec)
	jq '.process.terminal=false | .process.args=["/bin/true"]' "$b/config.json" >"$b/c" && mv "$b/c" "$b/config.json"
}
mkbundle "$work/plain"
mkbundle "$work/userns"
# runc with a user namespace: root maps to an unprivileged range.
jq '.linux.namespaces += [{"type":"user"}] | .linux.uidMappings=[{"containerID":0,"hostID":100000,"size":65536}] | .linux.gidMappings=[{"containerID":0,"hostID":100000,"size":65536}] | .mounts |= map(if .destination=="/sys" then .options += ["ro"] else . end)' \
	"$work/userns/config.json" >"$work/userns/c" && mv "$work/userns/c" "$work/userns/config.json"
chown -R 100000:100000 "$work/userns/rootfs"
mkbundle "$work/sysbox"
rm "$work/sysbox/config.json"
(cd "$work/sysbox" && "$bin/sysbox-runc" spec)
jq '.process.terminal=false | .process.args=["/bin/true"]' "$work/sysbox/config.json" >"$work/sysbox/c" && mv "$work/sysbox/c" "$work/sysbox/config.json"
# BENCH_NO_FS=1 measures without the fs daemon's views (to split the cost).
sysbox_env=()
if [ "${BENCH_NO_FS:-}" = 1 ]; then
	jq '.process.env += ["SYSBOX_NO_FS=true"]' "$work/sysbox/config.json" >"$work/sysbox/c" && mv "$work/sysbox/c" "$work/sysbox/config.json"
	sysbox_env=(-e SYSBOX_NO_FS=true)
fi
mkdir -p "$work"/root-{plain,userns,sysbox}

report() { # json file
	jq -r '
	  (.results | map(.median) | min) as $best |
	  .results[] | "  \(.command | .[0:60] | . + (" " * (60 - length)))  median \((.median*1000*100|round)/100) ms   \((.median/$best*100|round)/100)x"' "$1"
}

echo "== create+start+delete of /bin/true ($runs runs each)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/bundle.json" \
	-n "runc" "$runc --root $work/root-plain run --bundle $work/plain b-plain" \
	-n "runc + user namespace" "$runc --root $work/root-userns run --bundle $work/userns b-userns" \
	-n "sysbox-runc" "$bin/sysbox-runc --root $work/root-sysbox run --bundle $work/sysbox b-sysbox" >/dev/null
report "$work/bundle.json"

if "$docker" info >/dev/null 2>&1; then
	echo "== docker run --rm $image true ($runs runs each)"
	hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/docker.json" \
		-n "docker run (runc)" "$docker run --rm --network none --runtime runc $image true" \
		-n "docker run (sysbox-runc)" "$docker run --rm --network none --runtime sysbox-runc ${sysbox_env[*]} $image true" >/dev/null
	report "$work/docker.json"
else
	echo "== docker run: skipped, no Docker engine answers"
fi
