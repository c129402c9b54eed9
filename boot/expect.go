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

// ExpectKeys are the properties --expect can assert: cpus=N (exactly N
// CPUs online) and mem=SIZE (the kernel manages at most SIZE: MemTotal).
var ExpectKeys = []string{"cpus", "mem"}

// Expectation is one --expect KEY=VALUE.
type Expectation struct {
	Key  string `json:"key"`
	Want int64  `json:"want"`
}

func (e Expectation) String() string {
	if e.Key == "mem" {
		return "mem=" + sizeText(e.Want)
	}
	return fmt.Sprintf("%s=%d", e.Key, e.Want)
}

// sizeText writes a size as a boot parameter would.
func sizeText(n int64) string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{30, "G"}, {20, "M"}, {10, "K"}} {
		if n > 0 && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.suffix)
		}
	}
	return fmt.Sprint(n)
}

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
	if k == "mem" {
		n, err := memparse(v)
		if err != nil || n < 1 {
			return Expectation{}, fmt.Errorf("expectation %q: %q is not a positive size (e.g. 768M)", s, v)
		}
		return Expectation{Key: k, Want: n}, nil
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
	case "mem":
		if root != nil {
			if n, ok := memTotal(root); ok {
				return n, "/" + meminfoPath + " MemTotal", true
			}
		}
	}
	return 0, "", false
}

// judgeExpectation is the one judgment of an expectation: cpus holds when
// exactly that many CPUs are online, mem when the kernel manages at most
// that much (a mem= limit leaves MemTotal a little under it). Otherwise the
// finding says what was seen and, when an unknown boot parameter looks like
// the one meant to set it (mxcpus for maxcpus), names it.
func judgeExpectation(e Expectation, got int64, source string, observed bool, unknown []Finding) (ExpectResult, *Finding) {
	held := got == e.Want
	if e.Key == "mem" {
		held = got <= e.Want
	}
	res := ExpectResult{Expectation: e, Got: got, Source: source, Held: observed && held}
	if res.Held {
		return res, nil
	}
	f := &Finding{Rule: RuleBootExpectation, Param: e.String(), Value: got}
	if !observed {
		f.Value = 0
		where := fmt.Sprintf("no /%s, no \"smp: Brought up\" line in the log", cpuOnlinePath)
		if e.Key == "mem" {
			where = "no /" + meminfoPath
		}
		f.Message = fmt.Sprintf("expected %s, but this boot's %s cannot be read (%s): an assertion that cannot be checked does not pass", e, e.Key, where)
		return res, f
	}
	f.Message = fmt.Sprintf("expected %s, but %d CPUs are online (%s)", e, got, source)
	if e.Key == "mem" {
		f.Message = fmt.Sprintf("expected %s (at most), but the kernel manages %d MiB (%s)", e, got>>20, source)
	}
	for _, u := range unknown {
		if u.Rule == RuleUnknownBootParam && relatedParam(e.Key, u.Suggest) {
			f.Message += fmt.Sprintf("; the command line's %q is not a parameter this kernel knows, so it had no effect: did you mean %s?", u.Param, u.Suggest)
			f.Suggest = u.Suggest
			break
		}
	}
	return res, f
}

// relatedParam tells whether a boot parameter sets an expectation's key.
func relatedParam(key, name string) bool {
	switch key {
	case "cpus":
		return name == "maxcpus" || name == "nr_cpus" || name == "nosmp" || name == "possible_cpus"
	case "mem":
		return name == "mem" || name == "memmap"
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
