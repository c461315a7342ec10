#!/usr/bin/env bash
# install-deps.sh: the Debian/Ubuntu packages that building sysbox and
# running its tests need, installed with apt when any is missing.
# Idempotent and quick when all are there (no apt-get update then).
#
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --check  list what is missing, exit 1 if any
set -euo pipefail

PKGS=(
	# build: cgo against a static libseccomp
	gcc make git pkg-config libseccomp-dev file
	# engine and test images
	docker.io debootstrap debian-archive-keyring busybox-static ca-certificates
	# what the runtime and its tests use on the host
	uidmap fuse3 iproute2 iptables jq util-linux procps
	# peers the benchmarks and comparisons run side by side
	crun podman lxcfs hyperfine
)

missing=()
for p in "${PKGS[@]}"; do
	# A Docker engine from elsewhere (docker-ce) conflicts with docker.io:
	# any dockerd will do.
	if [[ $p == docker.io ]] && command -v dockerd >/dev/null; then continue; fi
	if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#PKGS[@]} packages present"
	exit 0
fi
if [[ ${1:-} == --check ]]; then
	echo "deps: missing: ${missing[*]}"
	exit 1
fi
[[ $(id -u) == 0 ]] || { echo "deps: missing ${missing[*]}; run as root to install them" >&2; exit 1; }

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
