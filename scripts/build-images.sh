#!/usr/bin/env bash
# build-images.sh: the e2e test images, built locally (there is no registry
# to pull from) with debootstrap and `docker import`, cached as tarballs.
#
#   scripts/build-images.sh [--force] [minimal|system|busybox ...]
#
# Each rootfs gets a key: a hash of this script's recipe version, the suite
# and its package list. The rootfs tarball is cached as
#   $SYSBOX_E2E_CACHE/NAME-KEY.tar
# and imported as $SYSBOX_E2E_REPO/NAME:TAG, TAG being a hash of KEY and the
# image config (CMD, ENV), and tagged :latest too. A run then
# takes one of three paths per image, and says which on a line of its own
# (the e2e cache test reads these lines):
#   "NAME: up to date"          the engine already has NAME:TAG: nothing to do
#   "NAME: imported from cache" the tarball was there: docker import only
#   "NAME: built"               debootstrap, tar, import
#
# Environment:
#   SYSBOX_E2E_CACHE   cache dir (default /var/cache/sysbox-e2e)
#   SYSBOX_E2E_REPO    image repository prefix (default sysbox-e2e)
#   SYSBOX_E2E_MIRROR  Debian mirror (default: the one apt uses for the suite)
#   SYSBOX_E2E_SUITE   Debian suite (default bookworm)
#   DOCKER             docker client (default /usr/bin/docker if present)
set -euo pipefail

# Bump when a recipe changes in a way the package lists do not show.
RECIPE_VERSION=3

CACHE=${SYSBOX_E2E_CACHE:-/var/cache/sysbox-e2e}
REPO=${SYSBOX_E2E_REPO:-sysbox-e2e}
SUITE=${SYSBOX_E2E_SUITE:-bookworm}
if [[ -z ${DOCKER:-} ]]; then
	if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi

# Packages on top of --variant=minbase. util-linux, mount and bash are
# already in minbase (priority required).
MINIMAL_PKGS=(procps iproute2 busybox-static)
SYSTEM_PKGS=(systemd systemd-sysv dbus docker.io iptables procps iproute2 kmod ca-certificates
	busybox-static less)

MINIMAL_CHANGES=('CMD ["/bin/bash"]')
# container=docker is what systemd reads to know it runs in a container.
# `docker import` cannot set STOPSIGNAL: run it with --stop-signal SIGRTMIN+3
# (what systemd stops on) when `docker stop` should shut it down cleanly.
SYSTEM_CHANGES=('CMD ["/sbin/init"]' 'ENV container=docker')
BUSYBOX_CHANGES=('CMD ["/bin/sh"]')

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# mirror prints the archive URL apt uses for $SUITE, so debootstrap fetches
# from the same place (deb822 .sources first, then one-line sources.list).
mirror() {
	if [[ -n ${SYSBOX_E2E_MIRROR:-} ]]; then
		echo "$SYSBOX_E2E_MIRROR"
		return
	fi
	local m=""
	shopt -s nullglob
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		m=$(awk -v suite="$SUITE" '
			function flush() { if (deb && hit && uri != "" && out == "") out = uri; deb = hit = 0; uri = "" }
			/^[[:space:]]*$/ { flush(); next }
			/^Types:/  { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			/^URIs:/   { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
			END { flush(); print out }' "$f")
		[[ -n $m ]] && break
	done
	if [[ -z $m ]]; then
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[[ -r $f ]] || continue
			m=$(awk -v suite="$SUITE" '
				$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				              if ($(i+1) == suite) { print $i; exit } }' "$f")
			[[ -n $m ]] && break
		done
	fi
	shopt -u nullglob
	echo "${m:-http://deb.debian.org/debian}"
}

# key NAME PARTS...: a short, stable hash of everything that shapes the image.
key() {
	printf '%s\n' "recipe=$RECIPE_VERSION" "suite=$SUITE" "$@" | sha256sum | cut -c1-12
}

# unmount_under DIR: lazily unmount anything left mounted below DIR
# (debootstrap's /proc and /sys if it was interrupted, our own /proc),
# deepest first.
unmount_under() {
	local dir=$1 m
	[[ -d $dir ]] || return 0
	dir=$(realpath "$dir")
	awk -v d="$dir/" 'index($2 "/", d) == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m" || true; done
}

WORK=""
cleanup() {
	if [[ -n $WORK ]]; then
		unmount_under "$WORK"
		rm -rf --one-file-system "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# strip ROOTFS: what no image should carry from the build host.
strip_rootfs() {
	local r=$1
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
		"$r"/var/log/*.log "$r"/var/log/apt/* "$r"/tmp/* "$r"/var/tmp/* "$r"/usr/sbin/policy-rc.d
	# The engine provides these at run time; systemd makes a machine-id at
	# first boot when the file is empty.
	rm -f "$r"/etc/resolv.conf "$r"/etc/hostname
	if [[ -e $r/etc/machine-id ]]; then : >"$r"/etc/machine-id; fi
	rm -f "$r"/var/lib/dbus/machine-id
}

# debootstrap_rootfs DIR PKGS...: minbase plus PKGS. Packages are added with
# apt inside the chroot, after a policy-rc.d that stops their maintainer
# scripts from starting services (docker.io would try to start dockerd).
debootstrap_rootfs() {
	local root=$1 mirror
	shift
	mirror=$(mirror)
	log "debootstrap $SUITE from $mirror into $root"
	debootstrap --variant=minbase --components=main "$SUITE" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
		{ tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
	unmount_under "$root"
	if (($# > 0)); then
		printf '#!/bin/sh\n# Set while the image is built: no service starts in the chroot.\nexit 101\n' \
			>"$root/usr/sbin/policy-rc.d"
		chmod 0755 "$root/usr/sbin/policy-rc.d"
		cp /etc/resolv.conf "$root/etc/resolv.conf"
		mount -t proc proc "$root/proc"
		log "apt-get install $*"
		if ! chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
			sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends "$@"' sh "$@" \
			>"$WORK/apt.log" 2>&1; then
			tail -n 30 "$WORK/apt.log" >&2
			die "apt-get install in the chroot failed (log above)"
		fi
		unmount_under "$root"
	fi
	strip_rootfs "$root"
}

# busybox_rootfs DIR: /bin/busybox from the host's busybox-static and one
# symlink per applet; small enough to docker save/load into inner engines.
busybox_rootfs() {
	local root=$1 bb a
	bb=$(command -v busybox) || die "busybox not found: apt-get install busybox-static"
	file -L "$bb" | grep -q 'statically linked' || die "$bb is not static: apt-get install busybox-static"
	mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev,var/tmp}
	chmod 1777 "$root/tmp" "$root/var/tmp"
	cp "$bb" "$root/bin/busybox"
	for a in $("$root/bin/busybox" --list); do
		[[ $a == busybox ]] || ln -sf busybox "$root/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# ensure NAME KEY CHANGES_ARRAY_NAME BUILD_FN BUILD_ARGS...
ensure() {
	local name=$1 k=$2 changes_name=$3 fn=$4
	shift 4
	local -n changes=$changes_name
	local tag ref tarball=$CACHE/$name-$k.tar start=$SECONDS
	tag=$(printf '%s\n' "$k" "${changes[@]}" | sha256sum | cut -c1-12)
	ref=$REPO/$name:$tag
	local -a change_args=()
	local c
	for c in "${changes[@]}"; do change_args+=(--change "$c"); done

	if [[ $FORCE == 0 ]] && "$DOCKER" image inspect "$ref" >/dev/null 2>&1; then
		"$DOCKER" tag "$ref" "$REPO/$name:latest"
		log "$name: up to date ($ref)"
		return
	fi
	if [[ $FORCE == 1 || ! -s $tarball ]]; then
		WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/sysbox-e2e-$name.XXXXXX")
		mkdir "$WORK/rootfs"
		"$fn" "$WORK/rootfs" "$@"
		tar --numeric-owner --xattrs --xattrs-include='*' --one-file-system -C "$WORK/rootfs" \
			-cf "$tarball.tmp" .
		mv -f "$tarball.tmp" "$tarball"
		cleanup
		WORK=""
		# Only the current recipe's tarball is worth keeping.
		find "$CACHE" -maxdepth 1 -name "$name-*.tar" ! -name "$name-$k.tar" -delete
		log "$name: built ($tarball, $(du -m "$tarball" | cut -f1) MiB)"
	else
		log "$name: imported from cache ($tarball)"
	fi
	"$DOCKER" import --message "sysbox e2e $name rootfs $k" "${change_args[@]}" - "$ref" <"$tarball" >/dev/null
	"$DOCKER" tag "$ref" "$REPO/$name:latest"
	# Tags of older recipes only take space; an image a container still
	# uses stays (rmi refuses), which is what we want.
	local old
	for old in $("$DOCKER" images --format '{{.Tag}}' "$REPO/$name"); do
		[[ $old == "$tag" || $old == latest ]] || "$DOCKER" rmi "$REPO/$name:$old" >/dev/null 2>&1 || true
	done
	log "$name: $ref ready in $((SECONDS - start))s"
}

FORCE=0
NAMES=()
for arg in "$@"; do
	case $arg in
	--force) FORCE=1 ;;
	minimal | system | busybox) NAMES+=("$arg") ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown image $arg (want minimal, system or busybox)" ;;
	esac
done
((${#NAMES[@]})) || NAMES=(minimal system busybox)

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, docker)"
"$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers at $DOCKER (start dockerd first)"
mkdir -p "$CACHE"
# One builder at a time per cache: a second caller waits, then finds the
# tarball the first one made.
exec 9>"$CACHE/.lock"
flock 9

for name in "${NAMES[@]}"; do
	case $name in
	minimal)
		ensure minimal "$(key "${MINIMAL_PKGS[@]}")" MINIMAL_CHANGES \
			debootstrap_rootfs "${MINIMAL_PKGS[@]}"
		;;
	system)
		ensure system "$(key "${SYSTEM_PKGS[@]}")" SYSTEM_CHANGES \
			debootstrap_rootfs "${SYSTEM_PKGS[@]}"
		;;
	busybox)
		bbsum=$(sha256sum "$(command -v busybox || echo /bin/busybox)" 2>/dev/null | cut -c1-16 || true)
		ensure busybox "$(key "busybox=$bbsum")" BUSYBOX_CHANGES busybox_rootfs
		;;
	esac
done
