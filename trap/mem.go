package trap

import (
	"bytes"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pathMax bounds the strings read from a caller, as the kernel does.
const pathMax = 4096

var pageSize = uint64(os.Getpagesize())

// readMem copies len(buf) bytes at addr out of process pid. It stops short
// at an unmapped page; n says how much came.
func readMem(pid int, addr uint64, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	return unix.ProcessVMReadv(pid, local, remote, 0)
}

// readString reads a NUL-terminated string at addr whose terminator lies
// within max bytes. It reads page by page, so a string that ends just
// before an unmapped page reads. EFAULT for a bad pointer and ENAMETOOLONG
// for a string too long, as the kernel would answer the caller.
func readString(pid int, addr uint64, max int) (string, error) {
	if addr == 0 {
		return "", unix.EFAULT
	}
	var out []byte
	buf := make([]byte, pageSize)
	for len(out) < max {
		chunk := min(pageSize-addr%pageSize, uint64(max-len(out)))
		n, err := readMem(pid, addr, buf[:chunk])
		if n <= 0 {
			if err == nil {
				err = unix.EFAULT
			}
			return "", err
		}
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		out = append(out, buf[:n]...)
		if uint64(n) < chunk {
			return "", unix.EFAULT
		}
		addr += uint64(n)
	}
	return "", unix.ENAMETOOLONG
}

// writeMem copies buf into process pid at addr. The caller checks the
// call is still valid first: a pid that died and was reused must not be
// written to.
func writeMem(pid int, addr uint64, buf []byte) error {
	local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMWritev(pid, local, remote, 0)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return unix.EFAULT
	}
	return nil
}

// bytesOf views a fixed-size value as bytes (for sysinfo's struct).
func bytesOf[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}
