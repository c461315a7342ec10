package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The types below are the parts of the Kubernetes API (node.k8s.io/v1
// RuntimeClass, apps/v1 DaemonSet, core/v1 PodSpec) these manifests use,
// with the API's field names. Decoding with KnownFields rejects any field
// the API does not have, as `kubectl apply --validate=strict` would.

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type toleration struct {
	Key               string `yaml:"key"`
	Operator          string `yaml:"operator"`
	Value             string `yaml:"value"`
	Effect            string `yaml:"effect"`
	TolerationSeconds *int64 `yaml:"tolerationSeconds"`
}

type runtimeClass struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Handler    string     `yaml:"handler"`
	Overhead   *struct {
		PodFixed map[string]string `yaml:"podFixed"`
	} `yaml:"overhead"`
	Scheduling *struct {
		NodeSelector map[string]string `yaml:"nodeSelector"`
		Tolerations  []toleration      `yaml:"tolerations"`
	} `yaml:"scheduling"`
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

type probe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	SuccessThreshold    int `yaml:"successThreshold"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Env             []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	SecurityContext *struct {
		Privileged *bool `yaml:"privileged"`
	} `yaml:"securityContext"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      *struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name             string `yaml:"name"`
		MountPath        string `yaml:"mountPath"`
		ReadOnly         bool   `yaml:"readOnly"`
		MountPropagation string `yaml:"mountPropagation"`
	} `yaml:"volumeMounts"`
}

type podSpec struct {
	NodeSelector                  map[string]string `yaml:"nodeSelector"`
	HostPID                       bool              `yaml:"hostPID"`
	HostNetwork                   bool              `yaml:"hostNetwork"`
	PriorityClassName             string            `yaml:"priorityClassName"`
	ServiceAccountName            string            `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool             `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int64            `yaml:"terminationGracePeriodSeconds"`
	Tolerations                   []toleration      `yaml:"tolerations"`
	InitContainers                []container       `yaml:"initContainers"`
	Containers                    []container       `yaml:"containers"`
	Volumes                       []struct {
		Name     string `yaml:"name"`
		HostPath *struct {
			Path string `yaml:"path"`
			Type string `yaml:"type"`
		} `yaml:"hostPath"`
	} `yaml:"volumes"`
}

type daemonSet struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		Selector       *labelSelector `yaml:"selector"`
		UpdateStrategy *struct {
			Type          string         `yaml:"type"`
			RollingUpdate map[string]any `yaml:"rollingUpdate"`
		} `yaml:"updateStrategy"`
		MinReadySeconds      int  `yaml:"minReadySeconds"`
		RevisionHistoryLimit *int `yaml:"revisionHistoryLimit"`
		Template             struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
)

// docs splits a manifest file into its YAML documents, as nodes.
func docs(t *testing.T, file string) []*yaml.Node {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, &n)
	}
}

// strict decodes a document into v, rejecting fields v does not have.
func strict(t *testing.T, file string, n *yaml.Node, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(n); err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: not valid against the API schema: %v", file, err)
	}
}

// kubectl parses YAML 1.1, where a plain yes/no/on/off is a boolean: a
// label value written so is rejected ("cannot unmarshal bool into string").
func checkNoBareBooleans(t *testing.T, file string, n *yaml.Node) {
	t.Helper()
	if n.Kind == yaml.ScalarNode && n.Style == 0 {
		switch strings.ToLower(n.Value) {
		case "y", "n", "yes", "no", "on", "off":
			t.Errorf("%s line %d: quote %q: YAML 1.1 (kubectl) reads it as a boolean", file, n.Line, n.Value)
		}
	}
	for _, c := range n.Content {
		checkNoBareBooleans(t, file, c)
	}
}

func kindOf(t *testing.T, n *yaml.Node) string {
	t.Helper()
	var head struct {
		Kind string `yaml:"kind"`
	}
	if err := n.Decode(&head); err != nil {
		t.Fatal(err)
	}
	return head.Kind
}

func TestManifests(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, f := range files {
		for _, n := range docs(t, f) {
			checkNoBareBooleans(t, f, n)
			kind := kindOf(t, n)
			seen[kind]++
			switch kind {
			case "RuntimeClass":
				var rc runtimeClass
				strict(t, f, n, &rc)
				checkRuntimeClass(t, f, &rc)
			case "DaemonSet":
				var ds daemonSet
				strict(t, f, n, &ds)
				checkDaemonSet(t, f, &ds)
			default:
				t.Errorf("%s: unexpected kind %q", f, kind)
			}
		}
	}
	if seen["RuntimeClass"] != 1 || seen["DaemonSet"] != 1 {
		t.Errorf("want one RuntimeClass and one DaemonSet, found %v", seen)
	}
}

func checkRuntimeClass(t *testing.T, f string, rc *runtimeClass) {
	if rc.APIVersion != "node.k8s.io/v1" {
		t.Errorf("%s: apiVersion %q, want node.k8s.io/v1", f, rc.APIVersion)
	}
	if !dnsSubdomain.MatchString(rc.Metadata.Name) {
		t.Errorf("%s: metadata.name %q is not a DNS subdomain", f, rc.Metadata.Name)
	}
	// handler is required, immutable, and a DNS label; it must name the
	// runtime `sysbox install --containerd` adds to containerd.
	if !dnsLabel.MatchString(rc.Handler) {
		t.Errorf("%s: handler %q is not a DNS label", f, rc.Handler)
	}
	if rc.Handler != "sysbox-runc" {
		t.Errorf("%s: handler %q, want sysbox-runc (containerd's runtime name)", f, rc.Handler)
	}
	if rc.Scheduling == nil || rc.Scheduling.NodeSelector["sysbox-install"] != "yes" {
		t.Errorf("%s: scheduling.nodeSelector should keep pods on sysbox-install=yes nodes", f)
	}
}

func checkDaemonSet(t *testing.T, f string, ds *daemonSet) {
	if ds.APIVersion != "apps/v1" {
		t.Errorf("%s: apiVersion %q, want apps/v1", f, ds.APIVersion)
	}
	if !dnsSubdomain.MatchString(ds.Metadata.Name) {
		t.Errorf("%s: metadata.name %q is not a DNS subdomain", f, ds.Metadata.Name)
	}
	// apps/v1 requires a selector, and it must select the template.
	sel := ds.Spec.Selector
	if sel == nil || len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		t.Fatalf("%s: spec.selector is required in apps/v1", f)
	}
	for k, v := range sel.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the template's labels %v", f, k, v, ds.Spec.Template.Metadata.Labels)
		}
	}
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) == 0 {
		t.Fatalf("%s: template.spec.containers is required", f)
	}
	vols := map[string]bool{}
	for _, v := range pod.Volumes {
		if !dnsLabel.MatchString(v.Name) {
			t.Errorf("%s: volume name %q is not a DNS label", f, v.Name)
		}
		if v.HostPath != nil && !filepath.IsAbs(v.HostPath.Path) {
			t.Errorf("%s: hostPath %q is not absolute", f, v.HostPath.Path)
		}
		vols[v.Name] = true
	}
	names := map[string]bool{}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		if !dnsLabel.MatchString(c.Name) || names[c.Name] {
			t.Errorf("%s: container name %q missing, not a DNS label, or repeated", f, c.Name)
		}
		names[c.Name] = true
		if c.Image == "" {
			t.Errorf("%s: container %s has no image", f, c.Name)
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				t.Errorf("%s: container %s mounts undeclared volume %q", f, c.Name, m.Name)
			}
			if !filepath.IsAbs(m.MountPath) {
				t.Errorf("%s: mountPath %q is not absolute", f, m.MountPath)
			}
		}
	}
	// What the installer itself needs.
	if !pod.HostPID {
		t.Errorf("%s: hostPID is needed to enter the node's namespaces", f)
	}
	c := pod.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("%s: the installer container must be privileged", f)
	}
	if pod.NodeSelector["sysbox-install"] != "yes" {
		t.Errorf("%s: nodeSelector sysbox-install=yes missing: %v", f, pod.NodeSelector)
	}
	script := strings.Join(append(slices.Clone(c.Command), c.Args...), " ")
	if !strings.Contains(script, "sysbox install --containerd") {
		t.Errorf("%s: the container does not run sysbox install --containerd:\n%s", f, script)
	}
}
