package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ktracer/ktracer/check"
	"github.com/ktracer/ktracer/check/history"
	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/export"
)

// copyTree copies a check/testdata machine root into a fresh directory, so
// a test can change a file of it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// The daemon's ktracer_kdump_ready is ktracer check's verdict, read through
// --root: on the seed's 16 GB host with Debian's default crashkernel
// (kdump-tools' 384M-:128M, which reserves 128M there) and a crash kernel
// loaded, check reports no kdump finding and the metric says ready; on the
// 256 GB host with the same 128M both say undersized.
func TestDaemonKdumpAgreesWithCheck(t *testing.T) {
	for _, tc := range []struct {
		root       string
		ready      bool
		reason     string
		checkRules []decoder.Rule
	}{
		{"16G", true, check.KdumpReady, nil},
		{"256G", false, check.KdumpUndersized, []decoder.Rule{check.RuleKdumpUndersized}},
	} {
		t.Run(tc.root, func(t *testing.T) {
			root := copyTree(t, "../../check/testdata/root-"+tc.root)
			os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("BOOT_IMAGE=/boot/vmlinuz-6.1.0-57-cloud-amd64 root=/dev/vda1 ro quiet crashkernel=384M-:128M\n"), 0o644)

			// What ktracer check says about that root.
			r, err := check.Run(os.DirFS(root), check.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			var rules []decoder.Rule
			for _, f := range r.Findings {
				if strings.HasPrefix(string(f.Rule), "kdump-") {
					rules = append(rules, f.Rule)
				}
			}
			if len(rules) != len(tc.checkRules) || (len(rules) > 0 && rules[0] != tc.checkRules[0]) {
				t.Fatalf("ktracer check: kdump findings %v, want %v", rules, tc.checkRules)
			}

			// What the daemon exports for it.
			m := export.NewMetrics(export.MetricsOptions{})
			d := &daemonStart{
				Options:  daemonOptions{root: root, stateDir: "/var/lib/ktracer"},
				Metrics:  m,
				Registry: prometheus.NewRegistry(),
				Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
				Findings: func(source string, evs []*decoder.Event) { m.SetStartupFindings(source, evs) },
			}
			if err := checkSource(d); err != nil {
				t.Fatal(err)
			}
			v := "0"
			if tc.ready {
				v = "1"
			}
			want := `
# HELP ktracer_kdump_ready Whether a panic would leave a dump (1) or not (0), as ktracer check judges it; reason says why not (ready, kernel-unsupported, not-reserved, reservation-failed, undersized, not-loaded).
# TYPE ktracer_kdump_ready gauge
ktracer_kdump_ready{reason="` + tc.reason + `"} ` + v + "\n"
			if err := testutil.CollectAndCompare(m, strings.NewReader(want), "ktracer_kdump_ready"); err != nil {
				t.Error(err)
			}
			// The startup findings the daemon publishes are check's.
			n := 0
			for _, rule := range tc.checkRules {
				n += int(testutil.ToFloat64(startupGauge(t, m, string(rule))))
			}
			if n != len(tc.checkRules) {
				t.Errorf("ktracer_startup_findings: %d of %v", n, tc.checkRules)
			}
		})
	}
}

// startupGauge is ktracer_startup_findings{source="check",rule=rule} as a
// collector for testutil.ToFloat64.
func startupGauge(t *testing.T, m *export.Metrics, rule string) prometheus.Collector {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != "ktracer_startup_findings" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "rule" && l.GetValue() == rule {
					g.Set(mt.GetGauge().GetValue())
				}
			}
		}
	}
	return g
}

// --state-dir is inside --root: the boot history the daemon writes is the
// one ktracer check (and the next start) reads under the same root.
func TestDaemonStateUnderRoot(t *testing.T) {
	root := t.TempDir()
	o := daemonOptions{root: root, stateDir: "/var/lib/ktracer"}
	d := &daemonStart{Options: o, AtCleanStop: func(func() error) {}}
	if err := historySource(d); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/ktracer", history.FileName)); err != nil {
		t.Errorf("no boot history under --root: %v", err)
	}
}
