package decoder

import (
	"fmt"
	"slices"
	"strconv"
)

// SourceStartupAudit marks what the startup audit found, as opposed to what
// was seen live: the Event.Source of its events and findings.
const SourceStartupAudit = "startup-audit"

// LoadedModule is what was recovered of a module loaded before this
// session started: its memory layout and symbols, read by the caller from
// sysfs, kallsyms and the module's file (or from the daemon's state), and
// the contents of its persistent data for the scan. The decoder only
// judges these facts.
type LoadedModule struct {
	Name     string
	Addr     uint64 // struct module (sysfs .gnu.linkonce.this_module)
	Text     Range
	InitText Range // the former init text; zero when unknown
	Data     [3]Range
	Symbols  []ModuleSymbol
	// Origin says where the names come from: the module's file path, or
	// "state" for the daemon's state directory.
	Origin string
	// NoInitNames, when set, says why the __init functions cannot be named
	// (no file, a file of another build): nothing is guessed then.
	NoInitNames string
	// Note is a remark on names that came from elsewhere (the file differs,
	// the daemon's state named them) or on data that was not scanned.
	Note   string
	Memory []MemoryChunk // persistent data, as read from the kernel
}

// ModuleSymbol is one symbol of a loaded module, at its kernel address.
type ModuleSymbol struct {
	Name string `json:"name"`
	Addr uint64 `json:"addr"`
	Size uint64 `json:"size,omitempty"`
	Kind byte   `json:"kind"` // kallsyms type letter: t, T, d, b, r...
}

// MemoryChunk is kernel memory read at Base.
type MemoryChunk struct {
	Section string
	Base    uint64
	Bytes   []byte
}

// AuditStats counts what the startup audit did.
type AuditStats struct {
	Modules       int // modules already loaded
	InitNamed     int // of them, with a former init range and its names
	WordsScanned  uint64
	InitPointers  uint64 // words pointing into the module's own former init text
	DanglingFound int
}

// AuditStats returns the startup audit's counters.
func (a *Analyzer) AuditStats() AuditStats { return a.audit }

// AddLoaded adds a module that was loaded before this session started, in
// load order (oldest first), and scans its data for pointers into its
// former init text. From then on it is a live module like any other: a
// fault in its former init text is a freed-init-call, an oops in it is
// named, and a later module reusing that memory ends the range's claim.
func (a *Analyzer) AddLoaded(lm *LoadedModule, out []Event) []Event {
	a.audit.Modules++
	if len(a.modules) >= maxModules {
		a.stats.Overflow++
		return out
	}
	key := lm.Addr
	if key == 0 || a.modules[key] != nil {
		// No struct module address (sysfs unreadable): a key no record
		// can name, so only a new load's overlap can retire it.
		key = ^uint64(0) - uint64(a.audit.Modules)
	}
	m := &Module{
		Addr: key, Name: lm.Name, Text: lm.Text, InitText: lm.InitText, Data: lm.Data,
		live: true, reported: true, recovered: true, origin: lm.Origin,
	}
	n := min(len(lm.Symbols), maxSymbolsPerModule)
	m.syms = make([]symbol, 0, n)
	for _, s := range lm.Symbols[:n] {
		if s.Name == "" || len(s.Name) > 0xffff {
			continue
		}
		m.syms = append(m.syms, symbol{
			value: s.Addr, size: s.Size, nameOff: uint32(len(m.names)), nameLen: uint16(len(s.Name)), kind: s.Kind,
			aliasPenalty: s.Name == "init_module" || s.Name == "cleanup_module",
		})
		m.names = append(m.names, s.Name...)
	}
	a.reclaim(m)
	a.modules[m.Addr] = m
	if m.InitText.Size != 0 && lm.NoInitNames == "" {
		a.audit.InitNamed++
	}

	ev := Event{Kind: KindModuleAlreadyLoaded, Module: m.Name, Symbols: len(m.syms), Source: SourceStartupAudit,
		Location: lm.Origin, Reason: lm.NoInitNames, Address: m.InitText.Base}
	if ev.Reason == "" {
		ev.Reason = lm.Note
	}
	// Its init function, by its own name (module_init's alias,
	// init_module, is at the same address): proof the names are back.
	for _, s := range lm.Symbols {
		if s.Name == "init_module" && m.InitText.Contains(s.Addr) {
			if name, off, ok := m.Function(s.Addr); ok {
				ev.Function = symbolString(name, off)
			}
			break
		}
	}
	out = append(out, ev)

	if a.loaded == nil {
		a.loaded = map[string]*Module{}
	}
	a.loaded[m.Name] = m
	return out
}

// ScanLoaded scans a module added by AddLoaded for words of its persistent
// data pointing into its former init text. Call it once every module
// already loaded has been added: a word pointing into memory a later module
// has taken since cannot be judged (the later module's init may have stored
// a pointer to its own code there), and is explained, not reported.
func (a *Analyzer) ScanLoaded(lm *LoadedModule, out []Event) []Event {
	m := a.loaded[lm.Name]
	if m == nil || m.InitText.Size == 0 || lm.NoInitNames != "" {
		return out
	}
	for _, c := range lm.Memory {
		for off := 0; off+8 <= len(c.Bytes); off += 8 {
			a.audit.WordsScanned++
			v := le64(c.Bytes[off:])
			if !lm.InitText.Contains(v) {
				continue
			}
			a.audit.InitPointers++
			pe := Event{Kind: KindFinding, Module: m.Name, Source: SourceStartupAudit}
			if m.isReused(v) {
				// A later module took that memory: the word may be a
				// pointer to its code (kvm's kvm_x86_ops, filled by
				// kvm_amd's init, is) or a stale one; no telling.
				pe.Kind, pe.Address = KindInitPointerIgnored, v
				pe.Location = "0x" + strconv.FormatUint(c.Base+uint64(off), 16)
				if obj, objOff, ok := m.DataObject(c.Base + uint64(off)); ok {
					pe.Location = obj + "+0x" + strconv.FormatUint(objOff, 16)
				}
				if fn, fnOff, ok := m.InitTextFunction(v); ok {
					pe.Function = symbolString(fn, fnOff)
				}
				now := "a later module"
				for _, o := range a.modules {
					if o != m && (o.Text.Contains(v) || o.freedInit(v)) {
						now = a.function(o, v) + " [" + o.Name + "]"
						break
					}
				}
				pe.Reason = "points into former init text a later module took since (now " + now + "): a pointer to that code, or a stale one"
				a.stats.UnattributedInitPointers++
				out = append(out, pe)
				continue
			}
			out = a.judgeInitPointer(pe, m, c.Base+uint64(off), v, out)
		}
	}
	return out
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// reclaim applies a new module's arrival to the others: memory it occupies
// is no longer anyone's freed init text, so a fault there must not be
// blamed on the old owner.
func (a *Analyzer) reclaim(m *Module) {
	for _, old := range a.modules {
		if old == m || !old.live {
			continue
		}
		for _, r := range m.intersections(old.InitText) {
			if len(old.reused) == maxReused {
				old.InitText, old.reused = Range{}, nil
				break
			}
			old.reused = append(old.reused, r)
		}
	}
}

// InitSnapshot returns every live module's ranges and __init symbols (those
// captured at load and those recovered), for the daemon's state directory:
// what a restarted daemon cannot read from anywhere else.
func (a *Analyzer) InitSnapshot() []LoadedModule {
	var out []LoadedModule
	for _, m := range a.modules {
		if !m.live || m.InitText.Size == 0 {
			continue
		}
		lm := LoadedModule{Name: m.Name, Addr: m.Addr, Text: m.Text, InitText: m.InitText, Data: m.Data}
		for i := range m.syms {
			s := &m.syms[i]
			if m.InitText.Contains(s.value) && isText(s.kind) {
				lm.Symbols = append(lm.Symbols, ModuleSymbol{Name: m.name(s), Addr: s.value, Size: s.size, Kind: s.kind})
			}
		}
		if len(lm.Symbols) == 0 {
			continue // nothing a restart could not recover
		}
		out = append(out, lm)
	}
	slices.SortFunc(out, func(x, y LoadedModule) int {
		switch {
		case x.Addr < y.Addr:
			return -1
		case x.Addr > y.Addr:
			return 1
		}
		return 0
	})
	return out
}

// judgeInitPointer decides whether a word of persistent data at where,
// holding value (inside m's init text), is a dangling-init-pointer (seed
// incident 2). Only a pointer to a function's first byte held inside a
// named data object is reported: anything else could be a coincidence of
// values. The one judgment for the live scan and the startup audit.
func (a *Analyzer) judgeInitPointer(ev Event, m *Module, where, value uint64, out []Event) []Event {
	ev.Address = value
	ev.Location = "0x" + strconv.FormatUint(where, 16)
	obj, objOff, inObject := m.DataObject(where)
	if inObject {
		ev.Location = obj + "+0x" + strconv.FormatUint(objOff, 16)
	}
	fn, fnOff, fnOK := m.InitTextFunction(value)
	if fnOK {
		ev.Function = symbolString(fn, fnOff)
	}
	switch {
	case !inObject:
		ev.Reason = "not inside a named data object"
	case obj == "__this_module":
		ev.Reason = "inside struct module"
	case !fnOK || fnOff != 0:
		ev.Reason = "not the start of an init function"
	}
	if ev.Reason != "" {
		a.stats.UnattributedInitPointers++
		ev.Kind = KindInitPointerIgnored
		return append(out, ev)
	}
	when := "init memory is freed now that init has returned"
	if ev.Source == SourceStartupAudit {
		a.audit.DanglingFound++
		when = "init memory was freed when init returned (found by the startup audit, the module was loaded before ktracer started)"
	}
	return append(out, finding(ev, RuleDanglingInitPointer, 0, fmt.Sprintf(
		"%s holds a pointer to %s, an __init function of %s; %s, so a later call through it jumps into freed memory: remove __init from %s, or do not keep the pointer",
		ev.Location, fn, m.Name, when, fn)))
}
