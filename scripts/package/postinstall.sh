#!/bin/sh
# postinstall: set up the host for sysbox once the package's files are in
# place. deb calls it with "configure"; rpm with 1 (install) or 2 (upgrade).
# `sysbox install` is idempotent, so an upgrade refreshes the setup (units,
# engine config) for the new binary. --prefix /usr: the package already put
# the binary and its links in /usr/bin; no second copy in /usr/local.
#
# A failure here does not fail the package: a half-configured package helps
# nobody, and the message says what to run once the cause is fixed.
set -u

case "${1:-}" in
configure | 1 | 2 | "") ;;
*) exit 0 ;;
esac

if ! /usr/bin/sysbox install --prefix /usr; then
	echo "sysbox: 'sysbox install' did not finish. See 'sysbox check' for what this host lacks," >&2
	echo "sysbox: then run 'sudo sysbox install' again." >&2
fi
exit 0
