// Package kubernetes holds the manifests that install sysbox on Kubernetes
// nodes (a DaemonSet) and let pods ask for it (a RuntimeClass). The Go here
// is only their test: a structural check against the Kubernetes API schema
// for those kinds, since no cluster runs in CI.
package kubernetes
