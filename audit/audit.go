// Package audit finds, in a kernel module file, every place that keeps or
// reaches the address of an __init function after init: the compile-time
// half of seed incident 2 (a pointer to __init code called ~30 minutes
// after boot, when init text was long freed). No kernel, no root: it reads
// the .ko's relocations and decodes the instructions they patch.
package audit

import (
	"debug/elf"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/kofile"
)

// Rules of the audit; IDs are stable, documented in the README.
const (
	// The address of an __init function is taken other than as a call:
	// a static initializer, a runtime store, an argument.
	RuleInitAddressTaken decoder.Rule = "init-address-taken"
	// Code that outlives init calls or jumps into __init code.
	RuleCallIntoInit decoder.Rule = "call-into-init"
)

// How an __init address is taken or reached; the JSON "kind" field.
const (
	KindStaticInitializer = "static-initializer" // data initialised with it
	KindStored            = "stored"             // code stores it into persistent data
	KindStoredIndirect    = "stored-via-pointer" // code stores it through a pointer
	KindPassed            = "passed"             // code passes it to a function
	KindComputed          = "computed"           // code computes it, its use unseen
	KindTailJump          = "tail-jump"          // non-init code jumps into init text
	KindCall              = "call"               // non-init code calls init text
)

// Finding is one report about one module file.
type Finding struct {
	File     string
	Module   string
	Rule     decoder.Rule
	Severity decoder.Severity
	Kind     string
	Function string // the __init function, e.g. kt_init_helper
	Location string // where the reference is: fn+0xoff or data_symbol+0xoff
	Section  string // the section of Location
	StoredTo string // stored: the data it is stored into, data_symbol+0xoff
	Callee   string // passed: the function it is passed to
	// Modpost tells whether 6.1's modpost section check warns about the
	// same reference (it checks references from .text and .data to init
	// sections, with a whitelist of symbol names).
	Modpost bool
	Message string
}

// File audits one module file. An error means the file could not be
// audited at all (unreadable, not a module, not x86-64).
func File(path string) ([]Finding, error) {
	m, err := kofile.Open(path)
	if err != nil {
		return nil, err
	}
	fs, err := Module(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fs, nil
}

// reloc is one x86-64 RELA entry of a section.
type reloc struct {
	off    uint64
	typ    elf.R_X86_64
	sym    kofile.Symbol
	addend int64
}

func (r reloc) size() uint64 {
	switch r.typ {
	case elf.R_X86_64_64, elf.R_X86_64_PC64:
		return 8
	}
	return 4
}

func (r reloc) pcRelative() bool {
	switch r.typ {
	case elf.R_X86_64_PC32, elf.R_X86_64_PLT32, elf.R_X86_64_PC64, elf.R_X86_64_GOTPCREL,
		elf.R_X86_64_GOTPCRELX, elf.R_X86_64_REX_GOTPCRELX:
		return true
	}
	return false
}

// auditor holds one module's state.
type auditor struct {
	m        *kofile.Module
	initText map[elf.SectionIndex]bool
	relocs   map[int][]reloc // by the index of the section they patch
	code     map[int]*codeSection
	findings []Finding
}

// Module audits a parsed module.
func Module(m *kofile.Module) ([]Finding, error) {
	if m.ELF.Class != elf.ELFCLASS64 || m.ELF.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("unsupported module: %s %s, the audit decodes x86-64 only", m.ELF.Class, m.ELF.Machine)
	}
	a := &auditor{m: m, initText: map[elf.SectionIndex]bool{}, relocs: map[int][]reloc{}, code: map[int]*codeSection{}}
	for _, s := range m.InitTextSections() {
		a.initText[elf.SectionIndex(s.Index)] = true
	}
	if len(a.initText) == 0 {
		return nil, nil
	}
	if err := a.readRelocs(); err != nil {
		return nil, err
	}
	targets := make([]int, 0, len(a.relocs))
	for idx := range a.relocs {
		targets = append(targets, idx)
	}
	sort.Ints(targets)
	for _, idx := range targets {
		if err := a.section(m.Sections[idx]); err != nil {
			return nil, err
		}
	}
	return a.findings, nil
}

func (a *auditor) readRelocs() error {
	bo := a.m.ELF.ByteOrder
	for _, s := range a.m.ELF.Sections {
		if s.Type == elf.SHT_REL {
			return fmt.Errorf("section %s: REL relocations on x86-64", clean(s.Name))
		}
		if s.Type != elf.SHT_RELA || s.Info == 0 || int(s.Info) >= len(a.m.Sections) {
			continue
		}
		if s.Size > kofile.MaxSize {
			return fmt.Errorf("section %s: %w", clean(s.Name), kofile.ErrTooLarge)
		}
		data, err := s.Data()
		if err != nil {
			return fmt.Errorf("section %s: %w", clean(s.Name), err)
		}
		if len(data)%24 != 0 {
			return fmt.Errorf("section %s: size %d is not a multiple of 24", clean(s.Name), len(data))
		}
		target := int(s.Info)
		tsize := a.m.Sections[target].Size
		for off := 0; off < len(data); off += 24 {
			info := bo.Uint64(data[off+8:])
			sym, ok := a.m.Symbol(int(elf.R_SYM64(info)))
			if !ok {
				if elf.R_SYM64(info) == 0 {
					continue // no symbol: nothing to audit
				}
				return fmt.Errorf("section %s: relocation names symbol %d of %d", clean(s.Name), elf.R_SYM64(info), len(a.m.Symbols))
			}
			r := reloc{off: bo.Uint64(data[off:]), typ: elf.R_X86_64(elf.R_TYPE64(info)), sym: sym,
				addend: int64(bo.Uint64(data[off+16:]))}
			if r.off+r.size() > tsize {
				return fmt.Errorf("section %s: relocation at %#x past the end of %s", clean(s.Name), r.off, clean(a.m.Sections[target].Name))
			}
			a.relocs[target] = append(a.relocs[target], r)
		}
	}
	for t := range a.relocs {
		rs := a.relocs[t]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].off < rs[j].off })
	}
	return nil
}

// intoInit tells whether a relocation's symbol lies in init text.
func (a *auditor) intoInit(r reloc) bool { return a.initText[r.sym.SecIdx] }

// initName names the __init function at offset off of its init section.
func (a *auditor) initName(sec elf.SectionIndex, off int64) string {
	if off >= 0 {
		if fn, d, ok := a.m.FunctionAt(sec, uint64(off)); ok {
			return symOff(fn.Name, d)
		}
	}
	return symOff(a.m.Sections[sec].Name, uint64(off))
}

func symOff(name string, off uint64) string {
	name = clean(name)
	if off == 0 {
		return name
	}
	return name + "+0x" + strconv.FormatUint(off, 16)
}

// section audits the relocations that patch one section.
func (a *auditor) section(s kofile.Section) error {
	switch {
	case kofile.IsKernelManaged(s.Name):
		// The kernel's and objtool's own tables of addresses (ftrace,
		// alternatives, exception and ORC tables...): bookkeeping, not
		// pointers a module calls.
		return nil
	case s.Name == kofile.ThisModuleSection:
		// struct module's init field: the kernel's own reference to the
		// module's init function, cleared when init memory is freed.
		return nil
	case s.Flags&elf.SHF_EXECINSTR != 0:
		// All code, .exit.text included: with CONFIG_MODULE_UNLOAD (every
		// distribution kernel) it is kept and runs at rmmod, long after
		// init text was freed, so its calls into init are time bombs
		// too (modpost agrees). Init code is decoded for the addresses
		// it takes; its direct calls into init text are fine.
		return a.auditCode(s)
	case kofile.IsInitSection(s.Name):
		// .init.data, .init.rodata, .init_array...: freed together with
		// init text, so their references die with it.
		return nil
	case s.IsPersistentData():
		// .exit.data is left out (kofile): it is freed with the module
		// on unload and holds only the cleanup_module alias' address.
		a.auditData(s)
	}
	return nil
}

// auditData reports static initializers: words of persistent data that
// point into init text.
func (a *auditor) auditData(s kofile.Section) {
	for _, r := range a.relocs[s.Index] {
		if !a.intoInit(r) {
			continue
		}
		// Data relocations, absolute or place-relative, name S + A.
		fn := a.initName(r.sym.SecIdx, int64(r.sym.Value)+r.addend)
		loc, holder := a.dataName(s, r.off)
		mp := modpostDataWarns(s.Name, holder)
		f := Finding{Rule: RuleInitAddressTaken, Severity: decoder.SeverityError, Kind: KindStaticInitializer,
			Function: fn, Location: loc, Section: clean(s.Name), StoredTo: loc, Modpost: mp}
		f.Message = fmt.Sprintf("%s (%s) is statically initialised with the address of __init %s: it outlives init and then points into freed text", loc, f.Section, fn)
		a.add(f)
	}
}

// dataName names offset off of data section s: object+0xoff, else the
// section. holder is the object's name ("" when none).
func (a *auditor) dataName(s kofile.Section, off uint64) (loc, holder string) {
	if o, d, ok := a.m.ObjectAt(elf.SectionIndex(s.Index), off); ok {
		return symOff(o.Name, d), o.Name
	}
	return symOff(s.Name, off), ""
}

func (a *auditor) add(f Finding) {
	f.Module = clean(a.m.Name)
	f.File = a.m.Path
	if f.Modpost {
		f.Message += " (modpost: yes)"
	} else {
		f.Message += " (modpost: no)"
	}
	a.findings = append(a.findings, f)
}

// modpostWhitelist is 6.1 modpost's DEFAULT_SYMBOL_WHITE_LIST: data
// objects with these names may reference init sections unwarned.
var modpostWhitelistSuffix = []string{"driver", "_template", "_timer", "_sht", "_ops", "_probe", "_probe_one", "_console"}

// modpostDataWarns tells whether 6.1's modpost warns about a reference
// from data section sec, in object holder, to init text: it checks only
// .data and .data.rel and whitelists some object names.
func modpostDataWarns(sec, holder string) bool {
	if sec != ".data" && sec != ".data.rel" {
		return false
	}
	if strings.HasPrefix(holder, "__param") {
		return false
	}
	for _, suf := range modpostWhitelistSuffix {
		if strings.HasSuffix(holder, suf) {
			return false
		}
	}
	return true
}

// modpostTextWarns tells whether 6.1's modpost warns about a reference
// from code section sec, in function fn, to init text: from its
// TEXT_SECTIONS and exit sections, except from *.constprop.* clones.
func modpostTextWarns(sec, fn string) bool {
	if strings.Contains(fn, ".constprop.") {
		return false
	}
	switch sec {
	case ".text", ".text.unlikely", ".sched.text", ".spinlock.text", ".irqentry.text",
		".softirqentry.text", ".kprobes.text", ".cpuidle.text", ".noinstr.text", ".exit.text":
		return true
	}
	return false
}

// clean escapes what a hostile file could put in a name.
func clean(s string) string {
	ok := true
	for _, r := range s {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			ok = false
			break
		}
	}
	if ok && len(s) <= 256 {
		return s
	}
	if len(s) > 256 {
		s = s[:256]
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}
