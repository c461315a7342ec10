//go:build seccomp

package probe

import (
	"fmt"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

// libseccompInfo reports the libseccomp linked into this binary and the API
// level it settles on for this kernel (the lower of what both support).
func libseccompInfo() (version string, api uint, err error) {
	a, b, c := libseccomp.GetLibraryVersion()
	api, err = libseccomp.GetAPI()
	return fmt.Sprintf("%d.%d.%d", a, b, c), api, err
}
