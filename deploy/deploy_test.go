// Package deploy holds ktracer's deployment files: a systemd unit,
// Prometheus alerting rules, a Grafana dashboard and a Kubernetes DaemonSet.
// These tests check them without external tools; the tool checks
// (systemd-analyze verify, promtool check/test rules) are in
// e2e/daemon_test.go, where make test installs the tools.
package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v2"

	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/export"
)

// defaultPort is ktracer daemon's default --web.listen-address port.
const defaultPort = 19436

// knownMetrics are the series names ktracer daemon can expose: every
// metric of the collector, with all its facts set.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := export.NewMetrics(export.MetricsOptions{Self: func() export.SelfStats { return export.SelfStats{} }})
	m.SetHooks([]export.Hook{{Name: "module_load", Attached: true, Method: "raw_tracepoint"}})
	m.SetBoot(export.BootFacts{TimeToInit: time.Second, BuiltinInitcalls: 1, SlowestFunction: "f", SlowestDuration: time.Millisecond})
	m.SetKdump(export.KdumpFacts{Reason: "not-loaded"})
	m.SetStartupFindings("check", []*decoder.Event{{Kind: decoder.KindFinding, Rule: "panic-loop", Severity: decoder.SeverityError}})
	m.AddStartupErrors("check", 1)
	ic := &decoder.Event{Kind: decoder.KindInitcall, Module: "m", Ret: 1}
	m.Observe(ic)
	f := *ic
	f.Kind, f.Rule, f.Severity = decoder.KindFinding, decoder.RulePositiveInitReturn, decoder.SeverityError
	m.Observe(&f)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

var metricRef = regexp.MustCompile(`\bktracer_[a-z0-9_]+`)

// checkRefs fails on any ktracer_* name in expr that ktracer does not expose.
func checkRefs(t *testing.T, where, expr string, known map[string]bool) []string {
	t.Helper()
	refs := metricRef.FindAllString(expr, -1)
	for _, r := range refs {
		if !known[r] {
			t.Errorf("%s: %s is not a metric ktracer exposes (expr %q)", where, r, expr)
		}
	}
	return refs
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/ktracer-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard needs a title and a uid")
	}
	known := knownMetrics(t)
	used := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, r := range checkRefs(t, "panel "+p.Title, tg.Expr, known) {
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(r, "_bucket"), "_sum"), "_count")] = true
			}
		}
	}
	// Every ktracer metric has a place on the dashboard.
	for name := range known {
		if !used[name] && !strings.HasSuffix(name, "_bucket") && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") {
			t.Errorf("no panel shows %s", name)
		}
	}
}

func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/ktracer-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Record      string            `yaml:"record"`
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil { // promtool check rules is the strict check
		t.Fatal(err)
	}
	known := knownMetrics(t)
	anchors := readmeAnchors(t)
	var alerts []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			checkRefs(t, "rule "+r.Alert+r.Record, r.Expr, known)
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
				}
				// The runbook is the alert's section of the README.
				u := r.Annotations["runbook_url"]
				anchor, ok := strings.CutPrefix(u, readmeURL+"#")
				if !ok || !anchors[anchor] {
					t.Errorf("alert %s: runbook_url %q is not an anchor of the README (%s#...)", r.Alert, u, readmeURL)
				}
			}
		}
	}
	// The list: positive init return, freed-init call, panic loop,
	// kdump not ready, ktracer losing events or not attached.
	for _, want := range []string{"KtracerPositiveInitReturn", "KtracerFreedInitCall", "KtracerPanicLoop",
		"KtracerKdumpNotReady", "KtracerLosingEvents", "KtracerProbeNotAttached", "KtracerDown"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

// readmeURL is where the README is read: alerts link into it.
const readmeURL = "https://github.com/ktracer/ktracer"

// readmeAnchors are the fragment ids GitHub gives the README's headings:
// lower case, spaces to hyphens, punctuation other than - and _ dropped,
// repeats numbered.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	seen := map[string]int{}
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				slug.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				slug.WriteRune(r)
			}
		}
		id := slug.String()
		if n := seen[id]; n > 0 {
			seen[id]++
			id = fmt.Sprintf("%s-%d", id, n)
		} else {
			seen[id] = 1
		}
		anchors[id] = true
	}
	return anchors
}

func TestReadmeAnchors(t *testing.T) {
	a := readmeAnchors(t)
	for _, want := range []string{"ktracer-daemon", "metrics", "alerts"} {
		if !a[want] {
			t.Errorf("README: no anchor %q (the slug rule is wrong, or the heading moved)", want)
		}
	}
}

// A severity label on a ktracer metric would collide with the one the
// alerting rules set and Alertmanager routes on: it follows from the rule.
func TestNoSeverityLabel(t *testing.T) {
	m := export.NewMetrics(export.MetricsOptions{})
	m.SetStartupFindings("check", []*decoder.Event{{Kind: decoder.KindFinding, Rule: "panic-loop", Severity: decoder.SeverityError}})
	m.Observe(&decoder.Event{Kind: decoder.KindFinding, Module: "m", Rule: decoder.RulePositiveInitReturn, Severity: decoder.SeverityError})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "severity" {
					t.Errorf("%s has a severity label", mf.GetName())
				}
			}
		}
	}
}

// The "Errors (1h)" stat picks findings by rule (there is no severity
// label): its rule list must be exactly the live rules of severity error.
func TestDashboardErrorRules(t *testing.T) {
	b, err := os.ReadFile("grafana/ktracer-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	// load-failed is an error except for EEXIST (info: udev's parallel
	// modprobes hit it on every boot). Without a severity label the stat
	// cannot tell the two apart, so it leaves load-failed out rather than
	// turn red after every boot; the findings table shows it. (Giving
	// EEXIST a rule of its own would make this exception go away.)
	downgraded := map[decoder.Rule]bool{decoder.RuleLoadFailed: true}
	var want []string
	for r, s := range decoder.RuleSeverity {
		if s == decoder.SeverityError && !downgraded[r] {
			want = append(want, string(r))
		}
	}
	slices.Sort(want)
	found := false
	for _, p := range d.Panels {
		if p.Title != "Errors (1h)" {
			continue
		}
		for _, tg := range p.Targets {
			found = true
			for _, m := range regexp.MustCompile(`rule=~"([^"]*)"`).FindAllStringSubmatch(tg.Expr, -1) {
				got := strings.Split(m[1], "|")
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("Errors (1h) selects rules %v, want the error rules %v", got, want)
				}
			}
			if !strings.Contains(tg.Expr, "rule=~") {
				t.Errorf("Errors (1h) does not select by rule: %s", tg.Expr)
			}
		}
	}
	if !found {
		t.Error("no Errors (1h) panel")
	}
}

func TestDaemonSet(t *testing.T) {
	b, err := os.ReadFile("kubernetes/ktracer-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Args  []string `yaml:"args"`
		Ports []struct {
			ContainerPort int `yaml:"containerPort"`
		} `yaml:"ports"`
		ReadinessProbe struct {
			HTTPGet struct {
				Path string `yaml:"path"`
			} `yaml:"httpGet"`
		} `yaml:"readinessProbe"`
		SecurityContext struct {
			Privileged   bool `yaml:"privileged"`
			Capabilities struct {
				Add  []string `yaml:"add"`
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	type doc struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					HostPID    bool        `yaml:"hostPID"`
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	var ds *doc
	for {
		var d doc
		if err := dec.Decode(&d); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not valid YAML: %v", err)
		}
		if d.Kind == "DaemonSet" {
			ds = &d
		}
	}
	if ds == nil {
		t.Fatal("no DaemonSet document")
	}
	pod := ds.Spec.Template.Spec
	if pod.HostPID || len(pod.Containers) != 1 {
		t.Fatalf("want one container and no hostPID: %+v", pod)
	}
	c := pod.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "daemon" || !slices.Contains(c.Args, ":"+itoa(defaultPort)) && !slices.Contains(c.Args, "--web.listen-address=:"+itoa(defaultPort)) {
		t.Errorf("args %q: want daemon listening on :%d (loopback, the default, is unreachable from Prometheus)", c.Args, defaultPort)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != defaultPort || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("port/probe: %+v", c)
	}
	sc := c.SecurityContext
	if !sc.Privileged {
		for _, capName := range []string{"BPF", "PERFMON"} {
			if !slices.Contains(sc.Capabilities.Add, capName) {
				t.Errorf("not privileged and no CAP_%s", capName)
			}
		}
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	for _, want := range []string{"/sys/kernel/btf", "/sys/kernel/tracing", "/host/proc"} {
		if !slices.Contains(mounts, want) {
			t.Errorf("no mount at %s", want)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// The unit's shape; systemd-analyze verify checks its syntax (e2e).
func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("systemd/ktracer.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, _ := strings.Cut(line, "=")
			keys[section+k] = strings.TrimSpace(keys[section+k] + " " + v)
		}
	}
	for key, want := range map[string]string{
		"[Unit]DefaultDependencies": "no",
		"[Service]Type":             "notify",
		"[Service]Restart":          "on-failure",
		"[Service]NoNewPrivileges":  "yes",
		"[Install]WantedBy":         "sysinit.target",
	} {
		if keys[key] != want {
			t.Errorf("%s = %q, want %q", key, keys[key], want)
		}
	}
	// Early enough to see the modules udev and modules-load.d load.
	for _, unit := range []string{"systemd-udevd.service", "systemd-modules-load.service"} {
		if !slices.Contains(strings.Fields(keys["[Unit]Before"]), unit) {
			t.Errorf("not ordered Before=%s", unit)
		}
	}
	caps := strings.Fields(keys["[Service]CapabilityBoundingSet"])
	slices.Sort(caps)
	if want := []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG", "CAP_SYS_RESOURCE"}; !slices.Equal(caps, want) {
		t.Errorf("CapabilityBoundingSet = %v, want exactly %v", caps, want)
	}
}
