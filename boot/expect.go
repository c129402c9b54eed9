package boot

import (
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/ktracer/ktracer/decoder"
)

// RuleBootExpectation is a post-boot assertion (--expect) that does not
// hold, or cannot be checked: seed incident 4's advice, "assert the
// expected state after boot", so a typo'd parameter fails loudly.
const RuleBootExpectation decoder.Rule = "boot-expectation-failed"

// ExpectKeys are the properties --expect can assert.
var ExpectKeys = []string{"cpus"}

// Expectation is one --expect KEY=VALUE.
type Expectation struct {
	Key  string `json:"key"`
	Want int64  `json:"want"`
}

func (e Expectation) String() string { return fmt.Sprintf("%s=%d", e.Key, e.Want) }

// ParseExpectation reads "cpus=2".
func ParseExpectation(s string) (Expectation, error) {
	k, v, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || k == "" || v == "" {
		return Expectation{}, fmt.Errorf("expectation %q: want KEY=VALUE, e.g. cpus=2", s)
	}
	known := false
	for _, x := range ExpectKeys {
		known = known || x == k
	}
	if !known {
		return Expectation{}, fmt.Errorf("expectation %q: unknown key %q (known: %s)", s, k, strings.Join(ExpectKeys, ", "))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return Expectation{}, fmt.Errorf("expectation %q: %q is not a positive count", s, v)
	}
	return Expectation{Key: k, Want: n}, nil
}

// ExpectResult is one expectation judged against the boot.
type ExpectResult struct {
	Expectation
	Got    int64  `json:"got"`
	Source string `json:"source,omitempty"` // where Got was read; "" when it could not be
	Held   bool   `json:"held"`
}

// smpRe is the kernel's count of CPUs brought up at boot.
var smpRe = regexp.MustCompile(`^smp: Brought up \d+ nodes?, (\d+) CPUs?$`)

// observe reads the running value of an expectation's key: the machine's
// state when there is one (what holds now), else the boot log.
func observe(key string, root fs.FS, kl *kernelLog) (int64, string, bool) {
	switch key {
	case "cpus":
		if root != nil {
			if n, ok := cpuCount(root, cpuOnlinePath); ok {
				return int64(n), "/" + cpuOnlinePath, true
			}
		}
		if kl != nil && kl.smpCPUs > 0 {
			return int64(kl.smpCPUs), "kernel log (smp: Brought up ...)", true
		}
	}
	return 0, "", false
}

// judgeExpectation is the one judgment of an expectation: it holds when the
// observed value equals the wanted one; otherwise the finding says what was
// seen and, when an unknown boot parameter looks like the one meant to set
// it (mxcpus for maxcpus), names it.
func judgeExpectation(e Expectation, got int64, source string, observed bool, unknown []Finding) (ExpectResult, *Finding) {
	res := ExpectResult{Expectation: e, Got: got, Source: source, Held: observed && got == e.Want}
	if res.Held {
		return res, nil
	}
	f := &Finding{Rule: RuleBootExpectation, Param: e.String(), Value: got}
	if !observed {
		f.Value = 0
		f.Message = fmt.Sprintf("expected %s, but this boot's %s cannot be read (no /%s, no \"smp: Brought up\" line in the log): an assertion that cannot be checked does not pass", e, e.Key, cpuOnlinePath)
		return res, f
	}
	f.Message = fmt.Sprintf("expected %s, but %d CPUs are online (%s)", e, got, source)
	for _, u := range unknown {
		if u.Rule == RuleUnknownBootParam && cpuParam(u.Suggest) {
			f.Message += fmt.Sprintf("; the command line's %q is not a parameter this kernel knows, so it did not limit the CPUs: did you mean %s?", u.Param, u.Suggest)
			f.Suggest = u.Suggest
			break
		}
	}
	return res, f
}

func cpuParam(name string) bool {
	switch name {
	case "maxcpus", "nr_cpus", "nosmp", "possible_cpus":
		return true
	}
	return false
}

// expectFindings judges every expectation; it runs after the parameter
// checks so a failure can name the typo behind it.
func (r *Report) expectFindings(exps []Expectation, root fs.FS, kl *kernelLog) {
	for _, e := range exps {
		got, src, ok := observe(e.Key, root, kl)
		res, f := judgeExpectation(e, got, src, ok, r.Findings)
		r.Expectations = append(r.Expectations, res)
		if f != nil {
			r.add(*f)
		}
	}
}
