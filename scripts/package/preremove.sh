#!/bin/sh
# preremove: undo what `sysbox install` did, before the binary goes. deb
# calls it with "remove" (or "upgrade", "deconfigure", "failed-upgrade");
# rpm with 0 (erase) or 1 (upgrade). On upgrade the setup stays: the new
# version's postinstall refreshes it.
set -u

case "${1:-}" in
remove | purge | 0) ;;
*) exit 0 ;;
esac

if ! /usr/bin/sysbox uninstall; then
	echo "sysbox: 'sysbox uninstall' did not finish; what it left is listed above." >&2
fi
exit 0
