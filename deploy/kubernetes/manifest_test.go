package kubernetes

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifest decodes every document of the shipped file strictly into its
// upstream API type: an unknown or misspelt field, a wrong type or an
// unknown kind fails, as kubectl apply --validate=strict would.
func manifest(t *testing.T) (ns *corev1.Namespace, ds *appsv1.DaemonSet, pm *monitoringv1.PodMonitor) {
	t.Helper()
	b, err := os.ReadFile("ktracer-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			ns = &corev1.Namespace{}
			obj = ns
		case "apps/v1 DaemonSet":
			ds = &appsv1.DaemonSet{}
			obj = ds
		case "monitoring.coreos.com/v1 PodMonitor":
			pm = &monitoringv1.PodMonitor{}
			obj = pm
		case " ":
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			t.Fatalf("document %d has no apiVersion and kind", i)
		default:
			t.Fatalf("document %d: unexpected %s %s", i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d (%s): %v", i, tm.Kind, err)
		}
	}
	if ns == nil || ds == nil || pm == nil {
		t.Fatalf("want a Namespace, a DaemonSet and a PodMonitor")
	}
	return ns, ds, pm
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestNamespace(t *testing.T) {
	ns, ds, pm := manifest(t)
	// The pod adds capabilities and runs unconfined: only the privileged
	// Pod Security level admits it.
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("namespace %s: pod-security.kubernetes.io/enforce=%q, want privileged", ns.Name, got)
	}
	if ds.Namespace != ns.Name || pm.Namespace != ns.Name {
		t.Errorf("DaemonSet in %q, PodMonitor in %q, want both in %q", ds.Namespace, pm.Namespace, ns.Name)
	}
}

// flag returns the value of --name=value in args, or def.
func flag(args []string, name, def string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return def
}

func TestDaemonSet(t *testing.T) {
	_, ds, pm := manifest(t)
	spec := ds.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("the selector %v does not match the pod template's labels %v", ds.Spec.Selector, ds.Spec.Template.Labels)
	}
	if psel, _ := metav1.LabelSelectorAsSelector(&pm.Spec.Selector); !psel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Error("the PodMonitor does not select the pods")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the root file system should be read-only: every write needs a volume")
	}
	if spec.HostPID || spec.HostNetwork || (sc.Privileged != nil && *sc.Privileged) {
		t.Error("no hostPID, host network or privileged container is needed")
	}

	root := flag(c.Args, "root", "/")
	if root == "/" {
		t.Fatalf("no --root in %v: the host's /proc and /sys would be the container's", c.Args)
	}
	stateDir := flag(c.Args, "state-dir", "/var/lib/ktracer")

	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("mount %s: no volume %q", m.MountPath, m.Name)
			continue
		}
		mounts[m.MountPath] = m
		// Under --root, a mount is the host's directory of the same name.
		if rel, ok := strings.CutPrefix(m.MountPath, root+"/"); ok {
			if v.HostPath == nil || v.HostPath.Path != "/"+rel {
				t.Errorf("%s is read as the host's /%s but mounts %+v", m.MountPath, rel, v.VolumeSource)
			}
		}
	}
	// What the daemon reads under --root, and the state it writes.
	for _, p := range []string{"/proc", "/sys", "/sys/fs/pstore", "/lib/modules"} {
		m, ok := mounts[path.Join(root, p)]
		if !ok {
			t.Errorf("the host's %s is not mounted at %s", p, path.Join(root, p))
		} else if !m.ReadOnly {
			t.Errorf("%s should be read-only", m.MountPath)
		}
	}
	st, ok := mounts[path.Join(root, stateDir)]
	switch {
	case !ok:
		t.Errorf("--state-dir %s has no volume at %s: the read-only root makes the daemon exit", stateDir, path.Join(root, stateDir))
	case st.ReadOnly:
		t.Errorf("the state volume is read-only")
	case volumes[st.Name].HostPath == nil:
		t.Errorf("the state volume is %+v, want a hostPath (an emptyDir dies with the pod, and the boot history with it)", volumes[st.Name].VolumeSource)
	case volumes[st.Name].HostPath.Type == nil || *volumes[st.Name].HostPath.Type != corev1.HostPathDirectoryOrCreate:
		t.Errorf("the state hostPath should be DirectoryOrCreate: a new node has none")
	}
	// Tracing reads the BTF and tracefs in the container's own /sys.
	for _, p := range []string{"/sys/kernel/btf", "/sys/kernel/tracing"} {
		if _, ok := mounts[p]; !ok {
			t.Errorf("no mount at %s", p)
		}
	}
	caps := sc.Capabilities
	if caps == nil || !slices.Contains(caps.Drop, "ALL") {
		t.Error("capabilities: drop ALL first")
	} else {
		var add []string
		for _, c := range caps.Add {
			add = append(add, string(c))
		}
		slices.Sort(add)
		if want := []string{"BPF", "PERFMON", "SYSLOG", "SYS_RESOURCE"}; !slices.Equal(add, want) {
			t.Errorf("capabilities add %v, want %v", add, want)
		}
	}
	// Scraped where it listens.
	listen := flag(c.Args, "web.listen-address", "127.0.0.1:19436")
	if len(c.Ports) != 1 || ":"+fmt.Sprint(c.Ports[0].ContainerPort) != listen {
		t.Errorf("listens on %q, container port %+v", listen, c.Ports)
	}
	if ds.Spec.Template.Annotations["prometheus.io/port"] != strings.TrimPrefix(listen, ":") {
		t.Errorf("prometheus.io/port %q, listen %q", ds.Spec.Template.Annotations["prometheus.io/port"], listen)
	}
}

// The container's arguments are flags ktracer daemon accepts (the image's
// entrypoint is the binary): cobra parses them before --help answers.
func TestArgsAreDaemonFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktracer")
	}
	_, ds, _ := manifest(t)
	args := append(slices.Clone(ds.Spec.Template.Spec.Containers[0].Args), "--help")
	cmd := exec.Command("go", append([]string{"run", "./cmd/ktracer"}, args...)...)
	cmd.Dir = "../.."
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("ktracer %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	if !strings.Contains(out.String(), "--root") {
		t.Errorf("ktracer daemon --help does not list --root:\n%s", out.String())
	}
}
