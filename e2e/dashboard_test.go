//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDashboardFirstFinding evaluates, with promtool, every dashboard query
// that reads ktracer_findings_total against series where a module breaks a
// rule for the first time: the series is born at 1. increase() alone sees
// nothing there (it needs two samples), so a stat built on it shows a green
// 0 exactly when a module first misbehaves.
func TestDashboardFirstFinding(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	b, err := os.ReadFile("../deploy/grafana/ktracer-dashboard.json")
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
	// Grafana's variables, as a dashboard over one instance would set them.
	vars := strings.NewReplacer("$instance", ".*", "$__rate_interval", "5m", "${instance}", ".*")
	var tests strings.Builder
	var titles []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "ktracer_findings_total") {
				continue
			}
			expr := vars.Replace(tg.Expr)
			// One sample with value 1, whatever labels the panel keeps:
			// the panel shows a non-zero value for the new finding.
			fmt.Fprintf(&tests, "      - expr: 'count((%s) > 0)'\n        eval_time: 12m\n        exp_samples:\n          - labels: '{}'\n            value: 1\n",
				strings.ReplaceAll(expr, "'", "''"))
			titles = append(titles, p.Title)
		}
	}
	if len(titles) == 0 {
		t.Fatal("no dashboard panel reads ktracer_findings_total")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty.yml"), []byte("groups: []\n"), 0o644)
	// kt_positive breaks a rule 10 minutes in: its series is born at 1.
	test := `rule_files: [empty.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'ktracer_findings_total{job="ktracer",instance="host1:19436",rule="positive-init-return",module="kt_positive"}'
        values: '_x10 1x20'
    promql_expr_test:
` + tests.String()
	os.WriteFile(filepath.Join(dir, "panels.test.yml"), []byte(test), 0o644)
	cmd := exec.Command(promtool, "test", "rules", "panels.test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("a dashboard panel misses a first finding (panels %q): %v\n%s\n%s", titles, err, out, test)
	}
	t.Logf("panels evaluated on a first finding: %q", titles)
}
