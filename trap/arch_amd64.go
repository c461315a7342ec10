package trap

import "golang.org/x/sys/unix"

const nativeArch = unix.AUDIT_ARCH_X86_64

// sysMknod is the legacy mknod(2); arm64 has only mknodat.
const sysMknod = unix.SYS_MKNOD
