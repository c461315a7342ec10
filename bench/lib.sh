# Shared by the bench scripts (sourced).

# bench_bundle DOCKER IMAGE DIR PROGRAM SYSBOX: an OCI bundle at DIR whose
# rootfs is IMAGE's filesystem with PROGRAM copied to its root, and a
# config.json from SYSBOX's `runc spec`, without a terminal and with a
# writable root, for the caller to give its args.
bench_bundle() {
	local docker=$1 image=$2 dir=$3 program=$4 sysbox=$5 cid
	mkdir -p "$dir/rootfs"
	cid=$("$docker" create "$image" true)
	"$docker" export "$cid" | tar -C "$dir/rootfs" -x
	"$docker" rm "$cid" >/dev/null
	cp "$program" "$dir/rootfs/"
	"$sysbox" runc spec --bundle "$dir"
	jq '.process.terminal = false | .root.readonly = false' "$dir/config.json" >"$dir/config.new"
	mv "$dir/config.new" "$dir/config.json"
}
