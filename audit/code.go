package audit

import (
	"debug/elf"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/kofile"
)

// kindInitData marks an address only seen stored into init data, which is
// freed with init text: no report.
const kindInitData = "init-data"

// maxTrack bounds how many instructions after an address is computed are
// followed to see where it goes.
const maxTrack = 64

// inst is one decoded instruction at offset off of its section.
type inst struct {
	off uint64
	x86asm.Inst
}

func (i inst) end() uint64 { return i.off + uint64(i.Len) }

// codeSection decodes a code section lazily: from each symbol (function,
// .cold part, __pfx_ padding) up to the next, the places where compiler
// output is known to start an instruction.
type codeSection struct {
	data    []byte
	anchors []uint64
	regions map[uint64][]inst // decoded instructions by anchor
}

func (a *auditor) codeOf(s kofile.Section) (*codeSection, error) {
	if c, ok := a.code[s.Index]; ok {
		return c, nil
	}
	data, err := a.m.SectionData(s.Index)
	if err != nil {
		return nil, fmt.Errorf("section %s: %w", clean(s.Name), err)
	}
	set := map[uint64]bool{0: true}
	for _, sym := range a.m.Symbols {
		if sym.SecIdx == elf.SectionIndex(s.Index) && sym.Type != elf.STT_SECTION && sym.Value < uint64(len(data)) {
			set[sym.Value] = true
		}
	}
	c := &codeSection{data: data, regions: map[uint64][]inst{}}
	for off := range set {
		c.anchors = append(c.anchors, off)
	}
	sort.Slice(c.anchors, func(i, j int) bool { return c.anchors[i] < c.anchors[j] })
	a.code[s.Index] = c
	return c, nil
}

// region returns the instructions from the anchor at or before off to the
// next anchor.
func (c *codeSection) region(off uint64) []inst {
	i := sort.Search(len(c.anchors), func(i int) bool { return c.anchors[i] > off }) - 1
	if i < 0 {
		return nil
	}
	start := c.anchors[i]
	if r, ok := c.regions[start]; ok {
		return r
	}
	end := uint64(len(c.data))
	if i+1 < len(c.anchors) {
		end = c.anchors[i+1]
	}
	var out []inst
	for pos := start; pos < end; {
		if isEndbr(c.data[pos:end]) {
			out = append(out, inst{pos, x86asm.Inst{Op: x86asm.NOP, Len: 4}})
			pos += 4
			continue
		}
		in, err := x86asm.Decode(c.data[pos:end], 64)
		if err != nil || in.Len == 0 {
			break
		}
		out = append(out, inst{pos, in})
		pos += uint64(in.Len)
	}
	c.regions[start] = out
	return out
}

// isEndbr tells whether code starts with ENDBR64 or ENDBR32 (f3 0f 1e
// fa/fb), which starts every function of kernels built with IBT (6.2+):
// x86asm's tables predate CET and would stop decoding there.
func isEndbr(code []byte) bool {
	return len(code) >= 4 && code[0] == 0xf3 && code[1] == 0x0f && code[2] == 0x1e && (code[3] == 0xfa || code[3] == 0xfb)
}

// at finds the instruction covering off and its index in its region.
func (c *codeSection) at(off uint64) ([]inst, int) {
	r := c.region(off)
	i := sort.Search(len(r), func(i int) bool { return r[i].end() > off })
	if i == len(r) || r[i].off > off {
		return r, -1
	}
	return r, i
}

// relocsIn returns the relocations patching bytes of one instruction.
func relocsIn(rs []reloc, in inst) []reloc {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].off >= in.off })
	var out []reloc
	for ; i < len(rs) && rs[i].off < in.end(); i++ {
		out = append(out, rs[i])
	}
	return out
}

// pointee is the section offset a relocation in instruction in makes the
// instruction refer to: S + A, plus the distance from the patched bytes to
// the instruction's end for a PC-relative one (the CPU adds RIP, the next
// instruction's address).
func pointee(r reloc, in inst) int64 {
	v := int64(r.sym.Value) + r.addend
	if r.pcRelative() {
		v += int64(in.end() - r.off)
	}
	return v
}

func hasImm(in inst) bool {
	for _, a := range in.Args {
		if _, ok := a.(x86asm.Imm); ok {
			return true
		}
	}
	return false
}

func isBranch(op x86asm.Op) bool {
	switch op {
	case x86asm.CALL, x86asm.JMP, x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG,
		x86asm.JGE, x86asm.JL, x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO,
		x86asm.JP, x86asm.JS, x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ:
		return true
	}
	return false
}

// auditCode audits the relocations into init text in one code section.
func (a *auditor) auditCode(s kofile.Section) error {
	fromInit := s.IsInitText()
	var c *codeSection
	rs := a.relocs[s.Index]
	for _, r := range rs {
		if !a.intoInit(r) {
			continue
		}
		if c == nil {
			var err error
			if c, err = a.codeOf(s); err != nil {
				return err
			}
		}
		from, fromName := a.codeName(s, r.off)
		region, idx := c.at(r.off)
		mp := !fromInit && modpostTextWarns(s.Name, fromName)
		if idx < 0 {
			// Not decodable: still an __init address in code; say so.
			fn := a.initName(r.sym.SecIdx, int64(r.sym.Value)+r.addend)
			a.add(Finding{Rule: RuleInitAddressTaken, Severity: decoder.SeverityWarning, Kind: KindComputed,
				Function: fn, Location: from, Section: clean(s.Name), Modpost: mp,
				Message: fmt.Sprintf("%s (%s) refers to __init %s in an instruction that could not be decoded", from, clean(s.Name), fn)})
			continue
		}
		in := region[idx]
		fn := a.initName(r.sym.SecIdx, pointee(r, in))
		from, _ = a.codeName(s, in.off)
		f := Finding{Function: fn, Location: from, Section: clean(s.Name), Modpost: mp}
		if isBranch(in.Op) && r.off+r.size() == in.end() {
			if fromInit {
				continue // init code calling init code: both go together
			}
			f.Rule, f.Severity = RuleCallIntoInit, decoder.SeverityError
			if in.Op == x86asm.CALL {
				f.Kind = KindCall
				f.Message = fmt.Sprintf("%s (%s) calls __init %s: run after init, it calls freed text", from, f.Section, fn)
			} else {
				f.Kind = KindTailJump
				f.Message = fmt.Sprintf("%s (%s) jumps to __init %s (%s): run after init, it jumps into freed text", from, f.Section, fn, strings.ToLower(in.Op.String()))
			}
			a.add(f)
			continue
		}
		a.addressTaken(f, s, c, rs, region, idx, r)
	}
	return nil
}

// codeName names offset off of code section s as fn+0xoff.
func (a *auditor) codeName(s kofile.Section, off uint64) (loc, fn string) {
	if f, d, ok := a.m.FunctionAt(elf.SectionIndex(s.Index), off); ok {
		return symOff(f.Name, d), f.Name
	}
	return symOff(s.Name, off), ""
}

// addressTaken follows an __init address computed by instruction
// region[idx] (relocation r) to where it is stored or passed.
func (a *auditor) addressTaken(f Finding, s kofile.Section, c *codeSection, rs []reloc, region []inst, idx int, r reloc) {
	f.Rule = RuleInitAddressTaken
	in := region[idx]
	isImm := hasImm(in) && r.off+4 == in.end()
	var tracked regSet
	switch {
	case in.Op == x86asm.MOV && isImm && isMem(in.Args[0]):
		// movq $init_fn, location: stored right here.
		a.store(&f, in, rs, in.Args[0].(x86asm.Mem))
	case (in.Op == x86asm.MOV && isImm || in.Op == x86asm.LEA) && isReg(in.Args[0]):
		tracked = tracked.add(in.Args[0].(x86asm.Reg))
	}
	if tracked != 0 {
		a.follow(&f, c, rs, region[idx+1:], tracked)
	}
	if f.Kind == "" {
		f.Kind = KindComputed
		f.Message = fmt.Sprintf("%s (%s) takes the address of __init %s (%s) and where it goes is not visible", f.Location, f.Section, f.Function, strings.ToLower(in.Op.String()))
	}
	f.Severity = decoder.SeverityWarning
	if f.Kind == KindStored {
		f.Severity = decoder.SeverityError
	}
	if f.Kind == kindInitData {
		return // stored only into data freed with init
	}
	a.add(f)
}

// follow reads the instructions after an __init address was put in a
// register and records the strongest outcome: stored into persistent data
// beats passed to a function beats stored through a pointer.
func (a *auditor) follow(f *Finding, c *codeSection, rs []reloc, next []inst, tracked regSet) {
	for n, in := range next {
		if n >= maxTrack || tracked == 0 || f.Kind == KindStored {
			return
		}
		switch in.Op {
		case x86asm.RET, x86asm.INT, x86asm.UD2, x86asm.UD1:
			return
		case x86asm.CALL, x86asm.JMP:
			callee := a.callee(c, rs, in)
			if tracked&argRegs != 0 && callee != "" && callee != "__x86_return_thunk" && !strings.HasPrefix(callee, "__fentry__") {
				if f.Kind != KindPassed {
					f.Kind, f.Callee = KindPassed, callee
					f.Message = fmt.Sprintf("%s (%s) passes the address of __init %s to %s: if that keeps it, it points into freed text after init", f.Location, f.Section, f.Function, callee)
				}
			}
			if in.Op == x86asm.JMP {
				return
			}
			tracked &= calleeSaved
			continue
		case x86asm.MOV:
			if isMem(in.Args[0]) && isReg(in.Args[1]) && tracked.has(in.Args[1].(x86asm.Reg)) {
				a.store(f, in, rs, in.Args[0].(x86asm.Mem))
				continue
			}
			if isReg(in.Args[0]) && isReg(in.Args[1]) && tracked.has(in.Args[1].(x86asm.Reg)) {
				tracked = tracked.add(in.Args[0].(x86asm.Reg))
				continue
			}
		case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.BT, x86asm.NOP:
			continue
		}
		// Anything else writing a register drops what it held.
		if len(in.Args) > 0 && isReg(in.Args[0]) {
			tracked = tracked.del(in.Args[0].(x86asm.Reg))
		}
		if in.Op == x86asm.XCHG && isReg(in.Args[1]) {
			tracked = tracked.del(in.Args[1].(x86asm.Reg))
		}
	}
}

// callee names a call or jump's target from its relocation.
func (a *auditor) callee(c *codeSection, rs []reloc, in inst) string {
	for _, r := range relocsIn(rs, in) {
		if r.sym.Type == elf.STT_SECTION {
			if r.sym.SecIdx > 0 && int(r.sym.SecIdx) < len(a.m.Sections) {
				if off := pointee(r, in); off >= 0 {
					if fn, d, ok := a.m.FunctionAt(r.sym.SecIdx, uint64(off)); ok {
						return symOff(fn.Name, d)
					}
				}
			}
			return clean(r.sym.Section)
		}
		return clean(r.sym.Name)
	}
	if len(in.Args) > 0 && in.Args[0] != nil {
		if _, rel := in.Args[0].(x86asm.Rel); !rel {
			return "an indirect call"
		}
	}
	return ""
}

// store records a store of the tracked address to memory operand m of in.
func (a *auditor) store(f *Finding, in inst, rs []reloc, m x86asm.Mem) {
	for _, r := range relocsIn(rs, in) {
		if hasImm(in) && r.off+4 == in.end() {
			continue // the immediate, not the location
		}
		off := pointee(r, in)
		var sec string
		var loc string
		switch {
		case r.sym.SecIdx == elf.SHN_UNDEF:
			// Another module's or the kernel's data: outlives this init.
			loc, sec = symOff(r.sym.Name, uint64(max(off, 0))), "extern"
		case r.sym.SecIdx > 0 && int(r.sym.SecIdx) < len(a.m.Sections):
			ds := a.m.Sections[r.sym.SecIdx]
			if !ds.IsPersistentData() {
				if f.Kind == "" {
					// Init data (freed with init) or similar: not a
					// report by itself.
					f.Kind = kindInitData
				}
				return
			}
			loc, _ = a.dataName(ds, uint64(max(off, 0)))
			sec = ds.Name
		default:
			return
		}
		where := loc
		if m.Index != 0 || (m.Base != 0 && m.Base != x86asm.RIP) {
			where += " at an index computed at run time"
		}
		f.Kind, f.StoredTo = KindStored, loc
		f.Message = fmt.Sprintf("%s (%s) stores the address of __init %s into %s (%s): it outlives init and then points into freed text", f.Location, f.Section, f.Function, where, clean(sec))
		return
	}
	if m.Base == x86asm.RSP || m.Base == x86asm.RBP {
		return // a stack slot: its later use is not followed
	}
	if f.Kind == "" || f.Kind == KindComputed {
		f.Kind = KindStoredIndirect
		f.Message = fmt.Sprintf("%s (%s) stores the address of __init %s through a pointer (%s): if that memory outlives init, it points into freed text", f.Location, f.Section, f.Function, strings.ToLower(m.Base.String()))
	}
}

func isMem(a x86asm.Arg) bool { _, ok := a.(x86asm.Mem); return ok }
func isReg(a x86asm.Arg) bool { _, ok := a.(x86asm.Reg); return ok }

// regSet is a set of 64-bit general registers (sub-registers fold into
// theirs).
type regSet uint32

func family(r x86asm.Reg) int {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return int(r - x86asm.AL)
	case r >= x86asm.AH && r <= x86asm.BH:
		return int(r - x86asm.AH)
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return 4 + int(r-x86asm.SPB)
	case r >= x86asm.AX && r <= x86asm.R15W:
		return int(r - x86asm.AX)
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return int(r - x86asm.EAX)
	case r >= x86asm.RAX && r <= x86asm.R15:
		return int(r - x86asm.RAX)
	}
	return -1
}

func (s regSet) add(r x86asm.Reg) regSet {
	if f := family(r); f >= 0 {
		s |= 1 << f
	}
	return s
}

func (s regSet) del(r x86asm.Reg) regSet {
	if f := family(r); f >= 0 {
		s &^= 1 << f
	}
	return s
}

func (s regSet) has(r x86asm.Reg) bool {
	f := family(r)
	return f >= 0 && s&(1<<f) != 0
}

func regs(rs ...x86asm.Reg) regSet {
	var s regSet
	for _, r := range rs {
		s = s.add(r)
	}
	return s
}

var (
	// System V AMD64 argument registers, as the kernel calls.
	argRegs = regs(x86asm.RDI, x86asm.RSI, x86asm.RDX, x86asm.RCX, x86asm.R8, x86asm.R9)
	// Registers a call preserves.
	calleeSaved = regs(x86asm.RBX, x86asm.RBP, x86asm.R12, x86asm.R13, x86asm.R14, x86asm.R15)
)
