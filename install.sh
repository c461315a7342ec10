#!/bin/sh
# Install sysbox: curl -fsSL https://raw.githubusercontent.com/sysbox-dev/sysbox/main/install.sh | sh
#
# Downloads the release archive for this machine's architecture and the
# release's checksums.txt, checks the archive's sha256, installs the binary
# in $SYSBOX_PREFIX/bin, then runs `sysbox install --docker` when Docker is
# here (else says what to run).
#
# Environment:
#   SYSBOX_VERSION     release to install, e.g. 0.3.0 (default: the latest)
#   SYSBOX_BASE_URL    where the release files are (default: GitHub releases)
#   SYSBOX_PREFIX      install prefix (default /usr/local)
#   SYSBOX_SKIP_SETUP  1: install the binary only, do not run `sysbox install`
#
# Everything is inside main, called on the last line: a download cut short
# runs nothing.

set -eu

say() { printf 'sysbox: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

fetch() { # URL FILE
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 3 -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		die "neither curl nor wget is installed"
	fi
}

sha256() { # FILE -> hex
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d' ' -f1
	elif command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 "$1" | sed 's/.*= *//'
	else
		die "no sha256 tool (sha256sum, shasum or openssl) to verify the download"
	fi
}

main() {
	[ "$(uname -s)" = Linux ] || die "sysbox runs on Linux only, not $(uname -s)"
	case "$(uname -m)" in
	x86_64 | amd64) arch=amd64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) die "no sysbox release for $(uname -m) (amd64 and arm64 only)" ;;
	esac

	version=${SYSBOX_VERSION:-}
	version=${version#v}
	if [ -n "${SYSBOX_BASE_URL:-}" ]; then
		base=${SYSBOX_BASE_URL%/}
	elif [ -n "$version" ]; then
		base="https://github.com/sysbox-dev/sysbox/releases/download/v$version"
	else
		base="https://github.com/sysbox-dev/sysbox/releases/latest/download"
	fi
	prefix=${SYSBOX_PREFIX:-/usr/local}

	sudo=""
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo)"
		sudo=sudo
	fi

	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT INT TERM

	say "fetching checksums.txt from $base"
	fetch "$base/checksums.txt" "$tmp/checksums.txt" || die "cannot download $base/checksums.txt"

	# The checksums name the archive, so "latest" needs no version lookup:
	# goreleaser's sysbox_<version>_linux_<arch>.tar.gz.
	if [ -n "$version" ]; then
		archive="sysbox_${version}_linux_${arch}.tar.gz"
		want=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/checksums.txt")
	else
		line=$(grep -E "^[0-9a-f]{64} [ *]?sysbox_[^ ]+_linux_${arch}\.tar\.gz\$" "$tmp/checksums.txt" | head -n 1 || true)
		want=${line%% *}
		archive=${line##* }
		archive=${archive#\*}
	fi
	[ -n "${want:-}" ] || die "checksums.txt lists no linux/$arch archive${version:+ for $version}"

	say "fetching $archive"
	fetch "$base/$archive" "$tmp/$archive" || die "cannot download $base/$archive"
	got=$(sha256 "$tmp/$archive")
	[ "$got" = "$want" ] || die "checksum mismatch for $archive: got $got, checksums.txt says $want; nothing installed"
	say "sha256 verified"

	mkdir "$tmp/x"
	tar -xzf "$tmp/$archive" -C "$tmp/x" || die "cannot unpack $archive"
	bin=$(find "$tmp/x" -type f -name sysbox | head -n 1)
	[ -n "$bin" ] || die "$archive holds no sysbox binary"

	# Copy beside the target and rename over it: daemons running the old
	# binary keep it, and nothing ever sees half a file.
	$sudo mkdir -p "$prefix/bin"
	$sudo cp "$bin" "$prefix/bin/.sysbox.new"
	$sudo chmod 0755 "$prefix/bin/.sysbox.new"
	$sudo mv -f "$prefix/bin/.sysbox.new" "$prefix/bin/sysbox"
	say "installed $prefix/bin/sysbox"

	if [ "${SYSBOX_SKIP_SETUP:-}" = 1 ]; then
		say "SYSBOX_SKIP_SETUP=1: not running sysbox install"
		return 0
	fi
	if command -v dockerd >/dev/null 2>&1 || [ -S /var/run/docker.sock ]; then
		say "Docker found: running sysbox install --docker"
		$sudo "$prefix/bin/sysbox" install --docker --prefix "$prefix"
	else
		say "no Docker here; set sysbox up for your engine with one of:"
		say "  $sudo $prefix/bin/sysbox install --containerd   (Kubernetes)"
		say "  $sudo $prefix/bin/sysbox install --podman"
	fi
}

main "$@"
