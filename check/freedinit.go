package check

import (
	"bytes"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/ktracer/ktracer/audit"
	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/kofile"
)

// RuleFreedInitCall names a panic whose oops is a call into freed module
// init text. On kernels whose module text comes from execmem's ROX cache
// (x86, 6.14 on), freed init text stays mapped and filled with int3, so the
// stale call traps on int3 instead of page-faulting, and the int3 oops is
// fatal: the live freed-init-call event never reaches user space, and the
// record pstore kept is all that is left. Same ID as the live rule.
const RuleFreedInitCall = decoder.RuleFreedInitCall

func init() { RuleSeverity[RuleFreedInitCall] = decoder.SeverityError }

// Int3Trap is the int3 oops of a pstore record, as far as its text tells.
type Int3Trap struct {
	// RIP as the kernel printed it: "kt_init_helper+0x1/0x30 [kt_timebomb]"
	// or, for an address no symbol covers, "0xffffffffc0407011".
	RIP string `json:"rip"`
	// Function, Offset and Module when the kernel named the address.
	Function string `json:"function,omitempty"`
	Offset   uint64 `json:"offset,omitempty"`
	Module   string `json:"module,omitempty"`
	// Address when it did not.
	Address uint64 `json:"address,omitempty"`
	// Int3Fill: the "Code:" bytes show int3 (0xcc) before and at the
	// trapping address: text that is no function's, filled with int3.
	Int3Fill bool `json:"int3_fill,omitempty"`
	// Caller is the first module frame of the call trace,
	// "kt_trigger_set.cold+0x33/0x55 [kt_timebomb]", CallerModule its module.
	Caller       string `json:"caller,omitempty"`
	CallerModule string `json:"caller_module,omitempty"`
	// Kernel is the release the oops names ("7.2.13+deb14-cloud-amd64").
	Kernel string `json:"kernel,omitempty"`
}

var (
	int3Oops  = regexp.MustCompile(`^Oops: int3\b|\bint3: [0-9a-f]{4} \[#\d+\]`)
	ripLine   = regexp.MustCompile(`^RIP: [0-9a-f]{4}:(.*)$`)
	ripSym    = regexp.MustCompile(`^([\w.$]+)\+0x([0-9a-f]+)/0x[0-9a-f]+ \[(\w+)\]$`)
	ripAddr   = regexp.MustCompile(`^0x([0-9a-f]{16})$`)
	codeLine  = regexp.MustCompile(`^Code: (.*)$`)
	frameLine = regexp.MustCompile(`^\s*(?:\? )?([\w.$]+\+0x[0-9a-f]+/0x[0-9a-f]+) \[(\w+)\]`)
	cpuLine   = regexp.MustCompile(`^CPU: \d+ .*(?:Not tainted|Tainted: [A-Z ]*?)\s+(\d+\.\d+\S*) #`)
)

// int3Parser follows a record's lines and keeps the last int3 oops.
type int3Parser struct {
	cur  *Int3Trap // the int3 oops being read, nil outside one
	last *Int3Trap
}

// line takes one line without its printk prefix; cause says it starts an
// oops or a BUG (causeLine).
func (p *int3Parser) line(line string, cause bool) {
	if cause {
		if strings.HasPrefix(line, "Oops: ") && p.cur != nil && p.cur.RIP == "" {
			return // "BUG: ..." then its own "Oops: ..."
		}
		p.cur = nil
		if int3Oops.MatchString(line) {
			p.cur = &Int3Trap{}
			p.last = p.cur
		}
		return
	}
	t := p.cur
	if t == nil {
		return
	}
	if m := cpuLine.FindStringSubmatch(line); m != nil && t.Kernel == "" {
		t.Kernel = m[1]
	}
	if m := ripLine.FindStringSubmatch(line); m != nil && t.RIP == "" {
		t.RIP = strings.TrimSpace(m[1])
		if s := ripSym.FindStringSubmatch(t.RIP); s != nil {
			t.Function, t.Module = s[1], s[3]
			t.Offset, _ = strconv.ParseUint(s[2], 16, 64)
		} else if a := ripAddr.FindStringSubmatch(t.RIP); a != nil {
			t.Address, _ = strconv.ParseUint(a[1], 16, 64)
		}
		return
	}
	if m := codeLine.FindStringSubmatch(line); m != nil && t.RIP != "" && !t.Int3Fill {
		// The byte in <> is the one at RIP; the int3 that trapped is the
		// one before it.
		f := strings.Fields(m[1])
		for i, b := range f {
			if strings.HasPrefix(b, "<") {
				t.Int3Fill = i > 0 && f[i-1] == "cc" && b == "<cc>"
				break
			}
		}
		return
	}
	if m := frameLine.FindStringSubmatch(line); m != nil && t.Caller == "" {
		t.Caller, t.CallerModule = m[1]+" ["+m[2]+"]", m[2]
	}
}

// x86-64's module area: MODULES_VADDR to MODULES_END.
const (
	modulesStart = 0xffffffffa0000000
	modulesEnd   = 0xffffffffff000000
)

// freedInitFinding names the last panic's int3 oops as a call into freed
// module init text, when its record shows one:
//   - the kernel named the address fn+0x1 [module]: the int3 at the first
//     byte of fn trapped. fn is confirmed __init from the module's file
//     when the file is found, and the finding is dropped when the file
//     says fn is not __init;
//   - the kernel could name no symbol at an address in the module area,
//     and the code there is int3 fill: text no module owns any more. The
//     module is the first module frame of the call trace (the caller), and
//     its file names the __init functions whose addresses it keeps.
func freedInitFinding(fsys fs.FS, b *BootFacts) (Finding, bool) {
	p := b.LastPanic
	if p == nil || p.Int3 == nil {
		return Finding{}, false
	}
	t := p.Int3
	kver := t.Kernel
	if kver == "" {
		if v, err := fs.ReadFile(fsys, "proc/sys/kernel/osrelease"); err == nil {
			kver = strings.TrimSpace(string(v))
		}
	}
	var msg string
	switch {
	case t.Function != "" && t.Offset == 1:
		msg = fmt.Sprintf("the panic of %s followed an int3 trap at %s: the first byte of %s in module %s was int3, which is what the kernel leaves in freed module init text",
			p.Path, t.RIP, t.Function, t.Module)
		m, where, err := openModule(fsys, kver, t.Module)
		if err != nil {
			msg += fmt.Sprintf("; not confirmed that %s is an __init function: %v", t.Function, err)
			break
		}
		sec := ""
		for _, s := range m.InitFunctions() {
			if s.Name == t.Function {
				sec = s.Section
			}
		}
		if sec == "" {
			return Finding{}, false // the file says fn is no __init function
		}
		msg += fmt.Sprintf("; %s is an __init function, in %s (confirmed from %s)", t.Function, sec, where)
	case t.Address >= modulesStart && t.Address < modulesEnd && t.Int3Fill && t.CallerModule != "":
		msg = fmt.Sprintf("the panic of %s followed an int3 trap at %s: an address in the module area that no symbol covers, filled with int3 (freed module text: init text is freed after init), called from %s (the first module frame of the call trace)",
			p.Path, t.RIP, t.Caller)
		t.Module = t.CallerModule
		m, where, err := openModule(fsys, kver, t.CallerModule)
		if err != nil {
			msg += fmt.Sprintf("; the __init function called cannot be named: the kernel had dropped the symbols of the freed init text, and the module's file could not be read: %v", err)
			break
		}
		var keeps []string
		var only string
		seen := map[string]bool{}
		afs, err := audit.Module(m)
		if err == nil {
			for _, f := range afs {
				if f.Rule == audit.RuleInitAddressTaken && !seen[f.Function] {
					seen[f.Function] = true
					only = f.Function
					at := "at " + f.Location
					if f.StoredTo != "" {
						at = "stored in " + f.StoredTo + " by " + f.Location
					}
					keeps = append(keeps, fmt.Sprintf("%s (%s)", f.Function, at))
				}
			}
		}
		switch {
		case err != nil:
			msg += fmt.Sprintf("; %s could not be audited: %v", where, err)
		case len(keeps) == 0:
			msg += fmt.Sprintf("; %s keeps the address of no __init function that its file shows", where)
		default:
			msg += fmt.Sprintf("; the kernel had dropped the symbols of the freed init text, but %s keeps the address of __init %s: the likely callee", where, strings.Join(keeps, ", "))
		}
		if len(keeps) == 1 {
			t.Function = only // the one candidate; the message says how it was inferred
		}
	default:
		return Finding{}, false
	}
	f := newFinding(RuleFreedInitCall, msg+"; on kernels that fill freed module text with int3 this call panics the machine, so the load-time findings (dangling-init-pointer, ktracer audit) are the ones that prevent it")
	f.Panic = p.Panic
	f.Module, f.Function = t.Module, t.Function
	return f, true
}

// openModule finds and parses a module's file for kernel kver under fsys,
// saying where it was found.
func openModule(fsys fs.FS, kver, name string) (*kofile.Module, string, error) {
	if kver == "" {
		return nil, "", fmt.Errorf("the kernel release is unknown")
	}
	p, err := kofile.LocateFS(fsys, kver, name)
	if err != nil {
		return nil, "", fmt.Errorf("the file of %s for %s was not found on this machine: %w", name, kver, err)
	}
	raw, err := readRegular(fsys, p, kofile.MaxSize)
	if err != nil {
		return nil, "", err
	}
	data, err := kofile.ReadAll(bytes.NewReader(raw)) // .ko.xz, .ko.zst
	if err != nil {
		return nil, "", fmt.Errorf("/%s: %w", p, err)
	}
	m, err := kofile.Parse(data)
	if err != nil {
		return nil, "", fmt.Errorf("/%s: %w", p, err)
	}
	m.Path = "/" + p
	return m, m.Path, nil
}
