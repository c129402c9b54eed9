//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// needTool fails (never skips) when a host tool the suite needs is missing;
// the Makefile installs it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: apt-get install %s (make test installs it)", name, pkg)
	}
	return p
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// console collects a running VM's serial output and lets the test wait for
// a KT-OUT line while the guest is still running.
type console struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
	logf  func(format string, args ...any) // progress, as it happens
}

func (c *console) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		c.mu.Lock()
		c.lines = append(c.lines, sc.Text())
		c.mu.Unlock()
		if i := strings.Index(sc.Text(), "KT-OUT:"); i >= 0 && !strings.Contains(sc.Text(), "KT-OUT:daemon-log:") {
			c.logf("guest: %s", sc.Text()[i:])
		}
		select {
		case c.added <- struct{}{}:
		default:
		}
	}
	close(c.added)
}

// out returns the KT-OUT:<step>: lines of a step, without the prefix.
func (c *console) out(step string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		if i := strings.Index(l, "KT-OUT:"+step+":"); i >= 0 {
			out = append(out, l[i+len("KT-OUT:"+step+":"):])
		}
	}
	return out
}

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tail(strings.Join(c.lines, "\n"), n)
}

// waitFor waits until step printed line, the VM ended, or the deadline.
func (c *console) waitFor(t *testing.T, step, line string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		for _, l := range c.out(step) {
			if l == line {
				return
			}
			if strings.HasPrefix(line, "exit:") && strings.HasPrefix(l, "exit:") {
				t.Fatalf("step %s: %s, want %s\n%s\nconsole (tail):\n%s", step, l, line, strings.Join(c.out(step), "\n"), c.tail(80))
			}
		}
		select {
		case _, ok := <-c.added:
			if !ok {
				t.Fatalf("the VM ended before KT-OUT:%s:%s\nconsole (tail):\n%s", step, line, c.tail(80))
			}
		case <-time.After(time.Second):
		case <-deadline:
			t.Fatalf("no KT-OUT:%s:%s after %s\nconsole (tail):\n%s", step, line, d, c.tail(80))
		}
	}
}

// killTree sends SIGTERM to pid and all its descendants, by id: run.sh's
// timeout puts QEMU in a process group of its own, so signalling run.sh's
// group would leave QEMU running until its --timeout.
func killTree(pid int) {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		var p, pp int
		fmt.Sscan(filepath.Base(filepath.Dir(st)), &p)
		if len(f) > 1 {
			fmt.Sscan(f[1], &pp)
			children[pp] = append(children[pp], p)
		}
	}
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			walk(c)
		}
		syscall.Kill(p, syscall.SIGTERM)
	}
	walk(pid)
}

// promQuery runs an instant query through Prometheus's HTTP API.
func promQuery(promURL, q string) ([]struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}, error) {
	resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

// poll retries f every second until it returns true or d passes.
func poll(d time.Duration, f func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Second) {
		if f() {
			return true
		}
	}
	return f()
}

// TestDaemonScrape: ktracer daemon runs in the guest, a real Prometheus on
// the host scrapes it through QEMU's port forwarding, kt_positive is loaded
// in the guest, and Prometheus's API returns the finding.
func TestDaemonScrape(t *testing.T) {
	prometheusBin := needTool(t, "prometheus", "prometheus")
	promtool := needTool(t, "promtool", "prometheus")
	if _, err := os.Stat(filepath.Join(*vmDir, "vmlinuz")); err != nil {
		t.Fatalf("no VM kernel in %s (run e2e/vm/setup.sh, or make test): %v", *vmDir, err)
	}
	metricsPort, signalPort, promPort := freePort(t), freePort(t), freePort(t)
	target := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)

	// Prometheus: loopback only, its own storage, a short scrape interval.
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: ktracer
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(prometheusBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+fmt.Sprintf("127.0.0.1:%d", promPort))
	promLog, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	prom.Stdout, prom.Stderr = promLog, promLog
	if err := prom.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	defer func() {
		prom.Process.Kill()
		prom.Wait()
	}()
	promTail := func() string { b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log")); return tail(string(b), 20) }
	if !poll(90*time.Second, func() bool {
		resp, err := http.Get(promURL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("prometheus not ready after 90s:\n%s", promTail())
	}

	// The VM, in the background: the guest script waits for our signals.
	payload := buildPayload(t)
	// stdbuf: run.sh pipes the console through tr, whose stdout would
	// otherwise be block-buffered, and this test reads it as it happens.
	vm := exec.Command("stdbuf", "-oL", "./vm/run.sh", "--vmdir", *vmDir, "--payload", payload, "--script", "daemon-guest.sh",
		"--timeout", "900", "--kmod", "virtio_pci", "--kmod", "virtio_net", "--append", "initcall_debug",
		"--hostfwd", fmt.Sprintf("tcp:%s-:19436", target),
		"--hostfwd", fmt.Sprintf("tcp:127.0.0.1:%d-:19500", signalPort))
	stdout, err := vm.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var vmErr strings.Builder
	vm.Stderr = &vmErr
	start := time.Now()
	if err := vm.Start(); err != nil {
		t.Fatalf("start the VM: %v", err)
	}
	c := &console{added: make(chan struct{}, 1), logf: t.Logf}
	readDone := make(chan struct{})
	go func() { c.read(stdout); close(readDone) }()
	var vmErrWait error
	vmDone := make(chan struct{}) // closed once run.sh has exited
	go func() { <-readDone; vmErrWait = vm.Wait(); close(vmDone) }()
	defer func() {
		select {
		case <-vmDone:
		default:
			killTree(vm.Process.Pid) // run.sh, timeout, QEMU
			<-vmDone
		}
	}()
	// signal sends word to the guest's hostsays, again every few seconds
	// until the guest prints a line for step (its first try can come
	// before the guest's nc listens, and QEMU accepts it anyway).
	signal := func(word, step string) {
		t.Helper()
		for end := time.Now().Add(3 * time.Minute); len(c.out(step)) == 0; {
			if time.Now().After(end) {
				t.Fatalf("the guest did not take %q\nconsole (tail):\n%s", word, c.tail(40))
			}
			if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", signalPort), 10*time.Second); err == nil {
				fmt.Fprintln(conn, word)
				conn.Close()
			}
			time.Sleep(3 * time.Second)
		}
	}

	c.waitFor(t, "ready", "exit:0", 8*time.Minute)
	t.Logf("daemon ready in the guest after %s", time.Since(start).Round(time.Second))

	// Nothing half-started: a port in use is a one-line error, status 2.
	c.waitFor(t, "port-in-use", "exit:2", time.Minute)
	c.waitFor(t, "wait", "insmod", time.Minute) // the step's stderr is out by then
	if out := c.out("port-in-use"); len(out) != 2 || !strings.Contains(out[1], "address already in use") {
		t.Errorf("second daemon on the same port: %q", out)
	}

	// Prometheus must have scraped the daemon before the module loads.
	if !poll(2*time.Minute, func() bool {
		r, err := promQuery(promURL, `up{job="ktracer"} == 1`)
		return err == nil && len(r) == 1
	}) {
		t.Fatalf("prometheus never scraped the daemon (up != 1)\nprometheus log:\n%s\nconsole (tail):\n%s", promTail(), c.tail(40))
	}
	if r, err := promQuery(promURL, `ktracer_probe_attached{hook="module_load"}`); err != nil || len(r) != 1 || r[0].Value[1] != "1" {
		t.Errorf("ktracer_probe_attached{hook=module_load} = %v (%v), want 1", r, err)
	}
	c.waitFor(t, "wait", "insmod", time.Minute)
	signal("insmod", "insmod")
	c.waitFor(t, "insmod", "exit:0", 3*time.Minute)

	// The finding through Prometheus's API: exactly one series, value 1.
	var got string
	if !poll(2*time.Minute, func() bool {
		r, err := promQuery(promURL, `ktracer_findings_total{rule="positive-init-return"}`)
		if err != nil || len(r) != 1 {
			got = fmt.Sprintf("%v %v", r, err)
			return false
		}
		got = fmt.Sprintf("%v = %v", r[0].Metric, r[0].Value[1])
		return r[0].Value[1] == "1" && r[0].Metric["module"] == "kt_positive" && r[0].Metric["severity"] == ""
	}) {
		t.Fatalf(`ktracer_findings_total{rule="positive-init-return"}: got %s, want 1 with module="kt_positive" and no severity label`, got)
	}
	t.Logf("prometheus: %s", got)
	// want: a value, "series" (exactly one, any value) or "none".
	for _, chk := range []struct{ q, want string }{
		{`ktracer_module_inits_total{module="kt_positive",result="positive"}`, "1"},
		{`ktracer_module_init_last_duration_seconds{module="kt_positive"} > 0`, "series"},
		{`ktracer_module_init_duration_seconds_count >= 1`, "series"},
		{`sum(ktracer_records_lost_total)`, "0"},
		{`ktracer_record_decode_errors_total`, "0"},
		{`count(ktracer_build_info)`, "1"},
		{`ktracer_records_read_total > 0`, "series"},
		{`ktracer_findings_total{module="kt_positive",rule!="positive-init-return"}`, "none"},
		// Startup sources: ktracer check (no crash kernel in the VM) and
		// the boot report (the VM boots with initcall_debug).
		// check's verdict: not ready, for the reason its finding gives.
		{`ktracer_kdump_ready{reason=~"not-reserved|kernel-unsupported"}`, "0"},
		{`ktracer_startup_findings{source="check",rule="kdump-not-configured"}`, "1"},
		{`ktracer_boot_builtin_initcalls > 100`, "series"},
		{`ktracer_boot_time_to_init_seconds > 0`, "series"},
		// Debian 6.1: set_hardened_usercopy (a late initcall) returns 1;
		// built-in code is module="built-in", as in ktracer_module_inits_total.
		{`ktracer_startup_findings{source="boot",rule="positive-init-return",module="built-in"}`, "1"},
	} {
		// The startup sources run after READY and take a while under TCG.
		var r []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		var err error
		ok := poll(2*time.Minute, func() bool {
			r, err = promQuery(promURL, chk.q)
			switch {
			case err != nil:
				return false
			case chk.want == "none":
				return len(r) == 0
			case chk.want == "series":
				return len(r) == 1
			}
			return len(r) == 1 && r[0].Value[1] == chk.want
		})
		if !ok {
			t.Errorf("%s: got %v (%v), want %s", chk.q, r, err, chk.want)
		}
	}

	// The scraped text itself is clean under promtool.
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(string(body))
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	t.Logf("scraped %d bytes, %d lines; promtool check metrics clean", len(body), strings.Count(string(body), "\n"))

	// SIGTERM detaches cleanly: exit 0, and the log has the finding.
	c.waitFor(t, "wait", "done", time.Minute)
	signal("done", "daemon")
	c.waitFor(t, "daemon-log", "exit:0", 3*time.Minute)
	c.waitFor(t, "daemon", "exit:0", time.Second)
	// SIGHUP reopened the log: the new file starts with saying so and
	// ends with the clean detach.
	var reopened []string
	for _, l := range c.out("daemon-log-reopened") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			reopened = append(reopened, fmt.Sprint(m["msg"]))
		}
	}
	if len(reopened) < 2 || !strings.HasPrefix(reopened[0], "SIGHUP: log file reopened") || reopened[len(reopened)-1] != "detached" {
		t.Errorf("log after SIGHUP: %q", reopened)
	}
	if errs := c.out("daemon-stderr"); len(errs) > 0 {
		t.Errorf("daemon stderr with --log.file: %q", errs)
	}
	var findings, attached int
	var sawDetached bool
	for _, l := range c.out("daemon-log") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("daemon log line is not JSON: %q", l)
			continue
		}
		switch {
		case m["event"] == "finding" && m["module"] == "kt_positive":
			findings++
			if m["rule"] != "positive-init-return" || m["function"] != "kt_positive_init" || m["value"] != 1.0 || m["level"] != "ERROR" {
				t.Errorf("finding log line: %s", l)
			}
		case m["event"] == "finding":
			t.Logf("startup finding: %s %s: %s", m["rule"], m["severity"], m["message"])
		case m["event"] == "attached":
			attached++
		case m["msg"] == "detached":
			sawDetached = true
		}
	}
	if findings != 1 || attached == 0 || sawDetached {
		t.Errorf("daemon log before SIGHUP: %d kt_positive findings (want 1), %d attached lines, detached %v (want it in the new file):\n%s", findings, attached, sawDetached, strings.Join(c.out("daemon-log"), "\n"))
	}
	select {
	case <-vmDone:
		if vmErrWait != nil {
			t.Errorf("VM: %v\n%s", vmErrWait, vmErr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Errorf("the VM did not power off")
	}
	t.Logf("VM boot and scrape test took %s", time.Since(start).Round(time.Second))
}

// TestDeployFiles runs the tools on the deployment files: systemd-analyze
// verify on the unit, promtool check and test on the alerting rules.
// (deploy/deploy_test.go checks their content without tools.)
func TestDeployFiles(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	analyze := needTool(t, "systemd-analyze", "systemd")

	// verify wants ExecStart's binary to exist: point it at a fresh build.
	dir := t.TempDir()
	bin := filepath.Join(dir, "ktracer")
	build := exec.Command("go", "build", "-o", bin, "../cmd/ktracer")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	unit, err := os.ReadFile("../deploy/systemd/ktracer.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/ktracer daemon") {
		t.Fatal("the unit's ExecStart is not /usr/bin/ktracer daemon (where the .deb installs it)")
	}
	unitPath := filepath.Join(dir, "ktracer.service")
	os.WriteFile(unitPath, []byte(strings.ReplaceAll(string(unit), "/usr/bin/ktracer", bin)), 0o644)
	// verify exits 0 on unknown keys and only warns: any output fails.
	if out, err := exec.Command(analyze, "verify", unitPath).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(analyze, "security", "--offline=true", unitPath).CombinedOutput(); err == nil {
		t.Logf("systemd-analyze security: %s", strings.TrimSpace(tail(string(out), 1)))
	}

	for _, args := range [][]string{
		{"check", "rules", "ktracer-alerts.yml"},
		{"test", "rules", "ktracer-alerts.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../deploy/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
