package decoder

import (
	"bytes"
	"slices"
	"strconv"
)

// Range is a span of kernel addresses [Base, Base+Size).
type Range struct {
	Base, Size uint64
}

// Contains reports whether addr lies in r.
func (r Range) Contains(addr uint64) bool {
	return r.Size != 0 && addr >= r.Base && addr-r.Base < r.Size
}

// Symbolizer resolves core-kernel addresses (from kallsyms).
type Symbolizer interface {
	Symbolize(addr uint64) (name string, offset uint64, ok bool)
	InitText() Range // the kernel's own init text, freed after boot
}

type symbol struct {
	value, size  uint64
	nameOff      uint32
	nameLen      uint16
	kind         byte // kallsyms type letter
	aliasPenalty bool // init_module/cleanup_module: aliases of the real names
}

// Module is what ktracer knows of one loaded module, captured at load time:
// its memory layout and its full symbol table, including the init symbols
// that kallsyms drops once init memory is freed.
type Module struct {
	Addr           uint64 // struct module address
	Name           string
	InitFn         uint64
	Text           Range
	InitText       Range
	Data           [3]Range
	ThisModuleSize uint64
	WantSymbols    int // symbols in the kernel's table, defined or not

	syms     []symbol
	names    []byte // all symbol names back to back: no allocation per symbol
	sorted   bool
	live     bool // init returned success: init text is freed or about to be
	reported bool // module_load event emitted
	// recovered: loaded before this session; the startup audit (or the
	// daemon's state) supplied its layout and names, from origin.
	recovered bool
	origin    string
	// reused are the parts of the freed init text later modules took: no
	// longer this module's (a fault there is not its freed-init-call).
	reused []Range
}

func newModule(e *Record) *Module {
	l := &e.ModuleLoad
	m := &Module{
		Addr:           l.Module,
		Name:           cString(l.Name[:]),
		InitFn:         l.InitFn,
		Text:           Range{l.Ranges.Text.Base, l.Ranges.Text.Size},
		InitText:       Range{l.Ranges.InitText.Base, l.Ranges.InitText.Size},
		ThisModuleSize: l.ThisModuleSize,
		WantSymbols:    int(l.NumSymbols),
	}
	for i, d := range l.Ranges.Data {
		m.Data[i] = Range{d.Base, d.Size}
	}
	// The kernel says how many symbols follow (undefined ones included, and
	// those are not sent): size the table once instead of growing it, up
	// to what a large real module has. The count is only a claim: a
	// corrupt record saying 2^32-1 must not allocate megabytes up front;
	// beyond the first allocation the table grows as symbols arrive.
	want := min(m.WantSymbols, maxSymbolsPresized)
	m.syms = make([]symbol, 0, want)
	m.names = make([]byte, 0, want*24)
	return m
}

var pfxPrefix, cfiPrefix = []byte("__pfx_"), []byte("__cfi_")

func (m *Module) addSymbol(s *Record) {
	name := cBytes(s.Symbol.Name[:])
	if len(name) == 0 {
		return // a section symbol: it would shadow the function at its address
	}
	// Newer kernels (CONFIG_CALL_PADDING, kCFI) put __pfx_F / __cfi_F on the
	// padding before each function F: not functions, never a name to show
	// (7.2 named an init "__pfx_init_module"). An address in the padding
	// then reads as the previous function plus an offset.
	if bytes.HasPrefix(name, pfxPrefix) || bytes.HasPrefix(name, cfiPrefix) {
		return
	}
	m.syms = append(m.syms, symbol{
		value:        s.Symbol.Value,
		size:         s.Symbol.Size,
		nameOff:      uint32(len(m.names)),
		nameLen:      uint16(len(name)),
		kind:         s.Symbol.Type,
		aliasPenalty: string(name) == "init_module" || string(name) == "cleanup_module",
	})
	m.names = append(m.names, name...)
	m.sorted = false
}

func (m *Module) name(s *symbol) string {
	return string(m.names[s.nameOff : s.nameOff+uint32(s.nameLen)])
}

func (m *Module) sort() {
	if m.sorted {
		return
	}
	// By address; at one address the real name before module_init's alias.
	slices.SortStableFunc(m.syms, func(a, b symbol) int {
		switch {
		case a.value < b.value:
			return -1
		case a.value > b.value:
			return 1
		case a.aliasPenalty != b.aliasPenalty:
			if a.aliasPenalty {
				return 1
			}
			return -1
		}
		return 0
	})
	m.sorted = true
}

func isText(kind byte) bool { return kind == 't' || kind == 'T' }

// Function names the function containing addr: the nearest text symbol at
// or below it, within the module's text or init text.
func (m *Module) Function(addr uint64) (name string, offset uint64, ok bool) {
	region := m.Text
	if !region.Contains(addr) {
		region = m.InitText
		if m.isReused(addr) {
			return "", 0, false // another module's memory now
		}
	}
	return m.functionIn(region, addr)
}

// functionIn names the function containing addr among the text symbols in
// region.
func (m *Module) functionIn(region Range, addr uint64) (name string, offset uint64, ok bool) {
	if !region.Contains(addr) {
		return "", 0, false
	}
	m.sort()
	i, _ := slices.BinarySearchFunc(m.syms, addr+1, func(s symbol, v uint64) int {
		if s.value < v {
			return -1
		}
		return 1
	})
	// syms[:i] have value <= addr; walk back to the first text symbol, then
	// to the first (preferred) name at that address.
	for i--; i >= 0; i-- {
		// The symbol must be in the same region as addr: with init symbols
		// missing, core text's last function is not the init function.
		if !region.Contains(m.syms[i].value) {
			break
		}
		if isText(m.syms[i].kind) {
			v := m.syms[i].value
			for i > 0 && m.syms[i-1].value == v && isText(m.syms[i-1].kind) {
				i--
			}
			return m.name(&m.syms[i]), addr - v, true
		}
	}
	return "", 0, false
}

func isData(kind byte) bool {
	switch kind {
	case 'd', 'D', 'b', 'B', 'r', 'R':
		return true
	}
	return false
}

// DataObject names the data object (a sized d/b/r symbol) containing addr.
func (m *Module) DataObject(addr uint64) (name string, offset uint64, ok bool) {
	m.sort()
	i, _ := slices.BinarySearchFunc(m.syms, addr+1, func(s symbol, v uint64) int {
		if s.value < v {
			return -1
		}
		return 1
	})
	for i--; i >= 0; i-- {
		s := &m.syms[i]
		if isData(s.kind) && s.size > 0 && addr-s.value < s.size {
			return m.name(s), addr - s.value, true
		}
		if addr-s.value >= 1<<20 {
			break // objects are not that large: stop walking back
		}
	}
	return "", 0, false
}

// intersections returns the parts of r that the module's memory covers.
func (m *Module) intersections(r Range) []Range {
	var out []Range
	for _, own := range []Range{m.Text, m.InitText, m.Data[0], m.Data[1], m.Data[2]} {
		if own.Size != 0 && r.Size != 0 && own.Base < r.Base+r.Size && r.Base < own.Base+own.Size {
			lo, hi := max(own.Base, r.Base), min(own.Base+own.Size, r.Base+r.Size)
			out = append(out, Range{lo, hi - lo})
		}
	}
	return out
}

// maxReused bounds the reused parts kept per module; past it the whole
// former init range stops counting.
const maxReused = 64

// isReused reports whether addr, in the freed init text, has been taken by
// a later module since.
func (m *Module) isReused(addr uint64) bool {
	for _, r := range m.reused {
		if r.Contains(addr) {
			return true
		}
	}
	return false
}

// freedInit reports whether addr is in the module's init text and no later
// module has taken that memory since.
func (m *Module) freedInit(addr uint64) bool {
	return m.InitText.Contains(addr) && !m.isReused(addr)
}

// InitTextFunction names an init function: valid even after init text is
// freed, because the names were captured at load.
func (m *Module) InitTextFunction(addr uint64) (string, uint64, bool) {
	return m.functionIn(m.InitText, addr)
}

// symbolString formats name+0xoff, or just name at offset 0.
func symbolString(name string, off uint64) string {
	if off == 0 {
		return name
	}
	return name + "+0x" + strconv.FormatUint(off, 16)
}
