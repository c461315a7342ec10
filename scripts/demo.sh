#!/usr/bin/env bash
# The README's main command (sudo make demo): on a fresh Debian or Ubuntu
# host, set everything up and show a system container with systemd and
# Docker inside, unprivileged. One progress line per step; the first failure
# stops with a clear message and a non-zero exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
name=${SYSBOX_DEMO_NAME:-sysbox-demo}
prefix=${SYSBOX_PREFIX:-/usr/local}
step=0
say() { step=$((step + 1)); printf '\n[%d] %s\n' "$step" "$*"; }
die() { printf '\ndemo: %s\n' "$*" >&2; exit 1; }
trap 'die "step $step failed (see the output above)"' ERR

[ "$(id -u)" -eq 0 ] || die "run as root: sudo make demo"
docker=/usr/bin/docker
[ -x "$docker" ] || docker=$(command -v docker || echo /usr/bin/docker)

say "Installing what is missing (Docker engine, debootstrap, build tools)"
"$top/scripts/install-deps.sh"
[ -x "$docker" ] || docker=$(command -v docker)

say "Building bin/sysbox"
make -C "$top" --no-print-directory build

say "Starting the Docker engine if it is not running"
if ! "$docker" version >/dev/null 2>&1; then
	mkdir -p /var/log/sysbox
	setsid /usr/sbin/dockerd >/var/log/sysbox/dockerd.log 2>&1 </dev/null &
	for _ in $(seq 120); do "$docker" version >/dev/null 2>&1 && break; sleep 0.5; done
	"$docker" version >/dev/null 2>&1 || die "dockerd did not start: see /var/log/sysbox/dockerd.log"
	echo "dockerd started (log /var/log/sysbox/dockerd.log)"
fi

say "sysbox install --docker (prefix $prefix)"
"$top/bin/sysbox" install --docker --prefix "$prefix"

say "Checking the host (sysbox check)"
"$prefix/bin/sysbox" check || die "sysbox check reports a FAIL: fix it first"

say "Building the system image (systemd, docker.io, iptables, procps, iproute2; cached)"
DOCKER=$docker "$top/scripts/build-images.sh" system busybox

say "Starting a system container: docker run --runtime=sysbox-runc -d sysbox-e2e/system /sbin/init (no --privileged)"
"$docker" rm -f "$name" >/dev/null 2>&1 || true
"$docker" run --runtime=sysbox-runc -d --name "$name" --stop-signal SIGRTMIN+3 sysbox-e2e/system:latest /sbin/init >/dev/null

say "Waiting for systemd to finish booting"
state=""
for _ in $(seq 120); do
	state=$("$docker" exec "$name" systemctl is-system-running 2>/dev/null || true)
	case "$state" in running | degraded) break ;; esac
	sleep 0.5
done
case "$state" in running | degraded) ;; *) die "systemd did not boot (state: ${state:-none})" ;; esac

say "Waiting for the inner Docker engine"
for _ in $(seq 120); do "$docker" exec "$name" docker info >/dev/null 2>&1 && break; sleep 0.5; done
"$docker" exec "$name" docker info >/dev/null || die "the inner dockerd did not answer"

say "Loading a small image into the inner Docker and running a container with it"
"$docker" save sysbox-e2e/busybox:latest | "$docker" exec -i "$name" docker load >/dev/null
inner=$("$docker" exec "$name" docker run --rm sysbox-e2e/busybox:latest sh -c 'echo hello from a container inside a system container; cat /proc/uptime')

printf '\n=== What the system container shows ===\n'
printf 'uid map (root inside is an unprivileged host uid):\n  %s\n' "$("$docker" exec "$name" cat /proc/self/uid_map | xargs)"
printf 'systemd state:              %s\n' "$state"
failed=$("$docker" exec "$name" systemctl --failed --no-legend --plain | awk '{print $1}' | xargs)
[ -n "$failed" ] && printf 'failed units:               %s\n' "$failed"
printf 'inner docker storage driver: %s\n' "$("$docker" exec "$name" docker info --format '{{.Driver}}')"
printf 'inner container output:\n%s\n' "$(sed 's/^/  /' <<<"$inner")"
printf '\nThe system container %s keeps running. Try:\n  docker exec -it %s bash\n  docker rm -f %s    # when done\n' "$name" "$name" "$name"
