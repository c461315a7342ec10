package trap

import "golang.org/x/sys/unix"

const nativeArch = unix.AUDIT_ARCH_AARCH64

// sysMknod: arm64 has no legacy mknod(2), only mknodat.
const sysMknod = -1
