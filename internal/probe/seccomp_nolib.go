//go:build !seccomp

package probe

import "errors"

func libseccompInfo() (string, uint, error) {
	return "none", 0, errors.New("this binary was built without libseccomp (build tag seccomp)")
}
