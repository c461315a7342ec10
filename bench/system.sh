#!/usr/bin/env bash
# System-container benchmarks, side by side in one run (make bench):
#  1. boot: from `docker run -d IMG /sbin/init` to systemd reporting
#     `running` or `degraded` (systemctl is-system-running, polled);
#  2. inner run: `docker run --rm busybox true` in the container's own
#     Docker engine, once it answers.
# Measured for sysbox-runc and, as the reference, for runc with what
# `--privileged` gives (the usual way to run systemd and Docker in a
# container). Prints each run, medians and ratios. Needs root, a running
# dockerd with sysbox-runc registered, the sysbox daemons, and the
# sysbox-e2e/system and sysbox-e2e/busybox images (make images).
#
# The reference: `docker run --privileged` where the host allows it. Where
# it does not (no process may hold CAP_SYS_RESOURCE on some VMs, and
# --privileged asks for every capability), the same container is made by
# hand: every capability the host has, no seccomp or AppArmor profile, all
# devices, unmasked /proc and /sys, private cgroup namespace with its
# cgroup mounts made writable, as --privileged does.
set -euo pipefail

runs=${BENCH_RUNS:-5}
inner_runs=${BENCH_INNER_RUNS:-5}
image=${BENCH_SYSTEM_IMAGE:-sysbox-e2e/system:latest}
small=${BENCH_SMALL_IMAGE:-sysbox-e2e/busybox:latest}
docker=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}

for img in "$image" "$small"; do
	if ! "$docker" image inspect "$img" >/dev/null 2>&1; then
		echo "bench/system.sh: no image $img: run make images" >&2
		exit 1
	fi
done

work=$(mktemp -d /tmp/sysbox-bench-system.XXXXXX)
names=()
cleanup() {
	for n in "${names[@]}"; do
		"$docker" rm -f -v "$n" >/dev/null 2>&1 || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

"$docker" save -o "$work/small.tar" "$small"

now() { date +%s.%N; }
# ms start end
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The reference's flags.
ref_flags=(--privileged)
if ! "$docker" run --rm --privileged --network none "$small" true >/dev/null 2>&1; then
	drops=() missing=()
	bnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
	last=$(cat /proc/sys/kernel/cap_last_cap)
	names_by_num=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
		LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
		SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
		SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
		MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
		CHECKPOINT_RESTORE)
	for ((c = 0; c <= last && c < ${#names_by_num[@]}; c++)); do
		if ((((0x$bnd >> c) & 1) == 0)); then
			drops+=(--cap-drop "${names_by_num[c]}")
			missing+=("CAP_${names_by_num[c]}")
		fi
	done
	ref_flags=(--cap-add ALL "${drops[@]}" --security-opt seccomp=unconfined --security-opt apparmor=unconfined
		--security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm' --cgroupns private
		-v /var/lib/docker --tmpfs /run --tmpfs /run/lock)
	echo "reference: this host cannot run --privileged containers (its bounding set lacks ${missing[*]:-nothing}); using runc with: ${ref_flags[*]}"
fi

# After boot, the reference made by hand gets what --privileged would have
# mounted writable: its own cgroups.
ref_fixup() { # name
	[ "${ref_flags[0]}" = --privileged ] && return 0
	"$docker" exec "$1" sh -c 'for m in $(awk "\$9 ~ /^cgroup/ {print \$5}" /proc/self/mountinfo); do mount -o remount,rw,bind "$m"; done; mount -o remount,rw /sys/fs/cgroup' >/dev/null
}

# boot kind name: prints the ms to running/degraded; leaves the container
# running. (It runs in a subshell: the caller records the name for cleanup.)
boot() {
	local kind=$1 name=$2 start state
	local flags=()
	if [ "$kind" = sysbox ]; then
		flags=(--runtime=sysbox-runc)
	else
		flags=("${ref_flags[@]}")
	fi
	start=$(now)
	"$docker" run -d --name "$name" --network none --stop-signal SIGRTMIN+3 "${flags[@]}" "$image" /sbin/init >/dev/null
	for _ in $(seq 1 600); do
		state=$("$docker" exec "$name" systemctl is-system-running 2>/dev/null || true)
		case $state in running | degraded) break ;; esac
		sleep 0.05
	done
	case $state in
	running | degraded) ;;
	*)
		echo "bench/system.sh: $kind container $name did not boot (systemd: ${state:-no answer})" >&2
		exit 1
		;;
	esac
	ms "$start" "$(now)"
}

# inner kind name: waits for the inner engine, loads the small image, then
# prints the ms of each inner `docker run --rm IMG true`, one per line.
inner() {
	local kind=$1 name=$2 s
	[ "$kind" = ref ] && ref_fixup "$name"
	for _ in $(seq 1 600); do
		"$docker" exec "$name" docker info >/dev/null 2>&1 && break
		sleep 0.1
	done
	"$docker" exec -i "$name" docker load <"$work/small.tar" >/dev/null
	# One untimed run warms the inner engine's first-container paths.
	"$docker" exec "$name" docker run --rm --network none "$small" true >/dev/null
	for _ in $(seq 1 "$inner_runs"); do
		s=$(now)
		"$docker" exec "$name" docker run --rm --network none "$small" true >/dev/null
		ms "$s" "$(now)"
		echo
	done
}

declare -A boots inners
for kind in sysbox ref; do
	boots[$kind]=""
	inners[$kind]=""
done
for n in $(seq 1 "$runs"); do
	# Alternate so both see the same machine state.
	for kind in sysbox ref; do
		name=sysbox-bench-$kind-$$-$n
		names+=("$name")
		t=$(boot "$kind" "$name")
		boots[$kind]+="$t"$'\n'
		printf '%-7s boot %2d: %6d ms\n' "$kind" "$n" "$t"
		if [ "$n" = 1 ]; then
			inners[$kind]=$(inner "$kind" "$name")
			printf '%-7s inner docker run --rm true: %s ms\n' "$kind" "$(echo "${inners[$kind]}" | tr '\n' ' ')"
		fi
		"$docker" rm -f -v "$name" >/dev/null
	done
done

bs=$(printf '%s' "${boots[sysbox]}" | median)
br=$(printf '%s' "${boots[ref]}" | median)
is=$(printf '%s\n' "${inners[sysbox]}" | grep . | median)
ir=$(printf '%s\n' "${inners[ref]}" | grep . | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
echo
echo "system container ($image), medians of $runs boots and $inner_runs inner runs:"
printf '  %-38s %9s %9s %7s\n' "" sysbox reference ratio
printf '  %-38s %6s ms %6s ms %7s\n' "docker run -d to systemd running" "$bs" "$br" "$(ratio "$bs" "$br")"
printf '  %-38s %6s ms %6s ms %7s\n' "inner docker run --rm IMG true" "$is" "$ir" "$(ratio "$is" "$ir")"
echo "  (Sysbox 0.7 on this kind of machine: about 9000 ms to boot, 1600 ms for the inner run)"
