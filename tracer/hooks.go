package tracer

import (
	"fmt"

	"github.com/ktracer/ktracer/bpf"
)

// Method is how a hook's program is attached to the kernel.
type Method string

const (
	RawTracepoint Method = "raw_tracepoint"
	Fentry        Method = "fentry"
	Fexit         Method = "fexit"
	Kprobe        Method = "kprobe"
	Kretprobe     Method = "kretprobe"
)

// candidate is one way to implement a hook: a program variant and where it
// attaches. Candidates are tried in order; the first the kernel accepts wins.
type candidate struct {
	prog   string
	method Method
	target string // tracepoint or kernel function
	// degraded says what this variant gives up, e.g. on kernels without
	// bpf_loop (before 5.17); "" for a full variant.
	degraded string
	// entry, for a kretprobe that needs its function's arguments: a kprobe
	// program on the same function, attached first, that keeps them.
	entry string
}

// hook is one thing ktracer observes. A required hook that attaches by no
// method makes the tracer useless, so New fails; others degrade.
type hook struct {
	name       string
	required   bool
	candidates []candidate
}

// Hooks, in the order they are attached. Tracepoints come first: they are a
// stable ABI. On 6.1 fexit on do_one_initcall is rejected (its argument is a
// function pointer), so the initcall hooks fall back to kprobes, not fexit.
var hooks = []hook{
	{name: "module_load", required: true, candidates: []candidate{
		{bpf.KtProgModuleLoadRawTp, RawTracepoint, "module_load", "", ""},
		{bpf.KtProgModuleLoadKprobe, Kprobe, "do_init_module", "", ""},
		{bpf.KtProgModuleLoadRawTpNoloop, RawTracepoint, "module_load", "no bpf_loop (kernel before 5.17): only a module's first 256 symbols are captured", ""},
	}},
	{name: "initcall_start", candidates: []candidate{
		{bpf.KtProgInitcallStartRawTp, RawTracepoint, "initcall_start", "", ""},
		{bpf.KtProgInitcallStartKprobe, Kprobe, "do_one_initcall", "", ""},
	}},
	{name: "initcall_finish", required: true, candidates: []candidate{
		{bpf.KtProgInitcallFinishRawTp, RawTracepoint, "initcall_finish", "", ""},
		{bpf.KtProgInitcallFinishKretprobe, Kretprobe, "do_one_initcall", "", ""},
		{bpf.KtProgInitcallFinishRawTpNoscan, RawTracepoint, "initcall_finish", "no bpf_loop (kernel before 5.17): no scan for dangling init pointers", ""},
	}},
	{name: "module_init_done", candidates: []candidate{
		{bpf.KtProgModuleDoneFexit, Fexit, "do_init_module", "", ""},
		{bpf.KtProgModuleDoneKretprobe, Kretprobe, "do_init_module", "", ""},
	}},
	{name: "module_free", candidates: []candidate{
		{bpf.KtProgModuleFreeRawTp, RawTracepoint, "module_free", "", ""},
		{bpf.KtProgModuleFreeKprobe, Kprobe, "free_module", "", ""},
	}},
	// Calls into freed init text: the instruction-fetch page fault they
	// cause, or the oops that follows where the exceptions tracepoints are
	// missing.
	{name: "exec_fault", candidates: []candidate{
		{bpf.KtProgExecFaultRawTp, RawTracepoint, "page_fault_kernel", "", ""},
		{bpf.KtProgExecFaultOopsKprobe, Kprobe, "page_fault_oops", "", ""},
	}},
	// The panic path (seed incident 3). There are no tracepoints here, so
	// fentry first: it attaches with CAP_BPF+CAP_PERFMON even where
	// perf_event_paranoid=3 reserves kprobes to CAP_SYS_ADMIN (Debian's
	// default). Kprobes are the fallback only.
	{name: "oops_page_fault", candidates: []candidate{
		{bpf.KtProgOopsFaultFentry, Fentry, "page_fault_oops", "", ""},
		{bpf.KtProgOopsFaultKprobe, Kprobe, "page_fault_oops", "", ""},
	}},
	{name: "oops_trap", candidates: []candidate{
		{bpf.KtProgOopsTrapFentry, Fentry, "die", "", ""},
		{bpf.KtProgOopsTrapKprobe, Kprobe, "die", "", ""},
	}},
	{name: "oops_gp", candidates: []candidate{
		{bpf.KtProgOopsGpFentry, Fentry, "die_addr", "", ""},
		{bpf.KtProgOopsGpKprobe, Kprobe, "die_addr", "", ""},
	}},
	{name: "warning", candidates: []candidate{
		{bpf.KtProgWarningFentry, Fentry, "__warn", "", ""},
		{bpf.KtProgWarningKprobe, Kprobe, "__warn", "", ""},
	}},
	// bad_page is static but not inlined on 6.1 or 6.12; the fentry
	// variant cannot read the caller from the stack at entry (the decoder
	// takes the culprit from the stack trace either way).
	{name: "bad_page", candidates: []candidate{
		{bpf.KtProgBadPageFentry, Fentry, "bad_page", "", ""},
		{bpf.KtProgBadPageKprobe, Kprobe, "bad_page", "", ""},
	}},
	// panic() is variadic (no fentry). From 6.11 it calls vpanic(fmt,
	// va_list), which gives the same record. Before, the kprobe on panic
	// where allowed (root), and else fentry on its log dump,
	// kmsg_dump(KMSG_DUMP_PANIC): no message, and after the other CPUs stop.
	{name: "panic", candidates: []candidate{
		{bpf.KtProgPanicVpanicFentry, Fentry, "vpanic", "", ""},
		{bpf.KtProgPanicKprobe, Kprobe, "panic", "", ""},
		{bpf.KtProgPanicDumpFentry, Fentry, "kmsg_dump", "no kprobes (perf_event_paranoid) and no vpanic (kernel before 6.11): the panic is seen at its log dump, after the other CPUs stop and after any crash-kernel hand-over, without its message", ""},
	}},
	{name: "crash_kexec", candidates: []candidate{
		{bpf.KtProgCrashKexecFentry, Fentry, "__crash_kexec", "", ""},
		{bpf.KtProgCrashKexecKprobe, Kprobe, "__crash_kexec", "", ""},
	}},
	{name: "emergency_restart", candidates: []candidate{
		{bpf.KtProgEmergencyRestartFentry, Fentry, "emergency_restart", "", ""},
		{bpf.KtProgEmergencyRestartKprobe, Kprobe, "emergency_restart", "", ""},
	}},
	// load-failed: load_module's return sends what the reason hooks saw.
	// The functions that reject (simplify_symbols, check_modinfo) are
	// inlined; the reason hooks are on what they call.
	{name: "load_failed", candidates: []candidate{
		{prog: bpf.KtProgLoadModuleFexit, method: Fexit, target: "load_module"},
		{prog: bpf.KtProgLoadModuleKretprobe, method: Kretprobe, target: "load_module"},
	}},
	{name: "load_unknown_symbol", candidates: []candidate{
		{prog: bpf.KtProgLoadResolveSymbolFexit, method: Fexit, target: "resolve_symbol"},
		{prog: bpf.KtProgLoadResolveSymbolKretprobe, method: Kretprobe, target: "resolve_symbol", entry: bpf.KtProgLoadResolveSymbolEntry},
	}},
	{name: "load_symbol_version", candidates: []candidate{
		{prog: bpf.KtProgLoadCheckVersionFexit, method: Fexit, target: "check_version"},
		{prog: bpf.KtProgLoadCheckVersionKretprobe, method: Kretprobe, target: "check_version", entry: bpf.KtProgLoadCheckVersionEntry},
		// 5.10 has no bpf_loop, and refuses fexit's int pointer argument:
		// a kretprobe still reads the kernel's CRC.
		{prog: bpf.KtProgLoadCheckVersionKretprobeNocrc, method: Kretprobe, target: "check_version", entry: bpf.KtProgLoadCheckVersionEntry,
			degraded: "no bpf_loop (kernel before 5.17): a version mismatch names the symbol and the kernel's CRC, not the module's"},
		{prog: bpf.KtProgLoadCheckVersionFexitNocrc, method: Fexit, target: "check_version",
			degraded: "no bpf_loop, no kprobes: a version mismatch names the symbol, not its CRCs"},
	}},
	// same_magic is inlined in 5.10: there a vermagic mismatch is a bare ENOEXEC.
	{name: "load_vermagic", candidates: []candidate{
		{prog: bpf.KtProgLoadSameMagicFexit, method: Fexit, target: "same_magic"},
		{prog: bpf.KtProgLoadSameMagicKretprobe, method: Kretprobe, target: "same_magic", entry: bpf.KtProgLoadSameMagicEntry},
	}},
	{name: "load_signature", candidates: []candidate{
		{prog: bpf.KtProgLoadVerifySigFexit, method: Fexit, target: "mod_verify_sig"},
		{prog: bpf.KtProgLoadVerifySigKretprobe, method: Kretprobe, target: "mod_verify_sig"},
	}},
}

// ParseMethod reads an attach method name.
func ParseMethod(s string) (Method, error) {
	for _, m := range []Method{RawTracepoint, Fentry, Fexit, Kprobe, Kretprobe} {
		if s == string(m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown attach method %q (want raw_tracepoint, fentry, fexit, kprobe or kretprobe)", s)
}
