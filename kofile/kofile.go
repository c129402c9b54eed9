// Package kofile reads a kernel module file (.ko, .ko.xz, .ko.zst, .ko.gz)
// with debug/elf: its name, build-id, sections and symbols, which of its
// functions are __init and which of its data outlives init. Pure Go, no
// kernel needed: `ktracer audit` and the startup audit both use it.
package kofile

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// MaxSize bounds a module file, decompressed. The largest module Debian
// ships (amdgpu, with debug info stripped) is about 40 MiB.
const MaxSize = 256 << 20

// Section is one ELF section of the module.
type Section struct {
	Index int
	Name  string
	Type  elf.SectionType
	Flags elf.SectionFlag
	Size  uint64
}

// Symbol is one entry of the module's symbol table. Value is relative to
// its section (a .ko is relocatable).
type Symbol struct {
	Index   int // in the ELF symbol table (relocations name symbols by it)
	Name    string
	Section string // "" for undefined, absolute and common symbols
	SecIdx  elf.SectionIndex
	Value   uint64
	Size    uint64
	Type    elf.SymType // elf.STT_FUNC, elf.STT_OBJECT, elf.STT_SECTION...
	Binding elf.SymBind
}

// IsFunction tells whether the symbol is a function.
func (s Symbol) IsFunction() bool { return s.Type == elf.STT_FUNC }

// IsObject tells whether the symbol is a data object.
func (s Symbol) IsObject() bool { return s.Type == elf.STT_OBJECT }

// Module is a parsed module file. ELF stays open for callers that need
// more (relocations, section contents); it reads from memory.
type Module struct {
	Path     string
	Name     string // from .modinfo name=, else .gnu.linkonce.this_module
	BuildID  string // hex NT_GNU_BUILD_ID, "" when the module has none
	Sections []Section
	Symbols  []Symbol // in symbol-table order; Symbols[i].Index == i+1
	ELF      *elf.File
}

// Open reads a module file, decompressing it when its magic bytes say xz,
// zstd or gzip, whatever its suffix.
func Open(path string) (*Module, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Path = path
	return m, nil
}

var (
	magicELF  = []byte("\x7fELF")
	magicXZ   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicGzip = []byte{0x1f, 0x8b}
)

// ErrTooLarge is returned for a module larger than MaxSize once decompressed.
var ErrTooLarge = fmt.Errorf("module larger than %d MiB decompressed", MaxSize>>20)

// ReadAll reads a module file's bytes from r, decompressed, at most MaxSize.
func ReadAll(r io.Reader) ([]byte, error) { return readLimited(r, MaxSize) }

func readLimited(r io.Reader, max int64) ([]byte, error) {
	head := make([]byte, 6)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, err
	}
	head = head[:n]
	src := io.MultiReader(bytes.NewReader(head), r)
	var dec io.Reader
	switch {
	case bytes.HasPrefix(head, magicELF):
		dec = src
	case bytes.HasPrefix(head, magicXZ):
		xr, err := xz.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		dec = xr
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(src, zstd.WithDecoderMaxMemory(MaxSize), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		dec = zr
	case bytes.HasPrefix(head, magicGzip):
		gr, err := gzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		dec = gr
	default:
		return nil, fmt.Errorf("not an ELF file nor xz, zstd or gzip compressed (starts with % x)", head)
	}
	data, err := io.ReadAll(io.LimitReader(dec, max+1))
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if int64(len(data)) > max {
		return nil, ErrTooLarge
	}
	return data, nil
}

// Parse reads a module from its decompressed bytes.
func Parse(data []byte) (m *Module, err error) {
	// debug/elf trusts sizes in the headers in places; a hostile file must
	// fail alone, not take the caller down.
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("malformed ELF: %v", r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a valid ELF file: %w", err)
	}
	if f.Type != elf.ET_REL {
		return nil, fmt.Errorf("not a kernel module: ELF type %s, want ET_REL", f.Type)
	}
	m = &Module{ELF: f}
	for i, s := range f.Sections {
		m.Sections = append(m.Sections, Section{Index: i, Name: s.Name, Type: s.Type, Flags: s.Flags, Size: s.Size})
	}
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("symbol table: %w", err)
	}
	for i, s := range syms {
		sym := Symbol{Index: i + 1, Name: s.Name, SecIdx: s.Section, Value: s.Value, Size: s.Size,
			Type: elf.ST_TYPE(s.Info), Binding: elf.ST_BIND(s.Info)}
		if s.Section > elf.SHN_UNDEF && s.Section < elf.SHN_LORESERVE && int(s.Section) < len(f.Sections) {
			sym.Section = f.Sections[s.Section].Name
			if sym.Type == elf.STT_SECTION && sym.Name == "" {
				sym.Name = sym.Section
			}
		}
		m.Symbols = append(m.Symbols, sym)
	}
	m.Name = modinfoName(f)
	if m.Name == "" {
		m.Name = thisModuleName(f)
	}
	m.BuildID = buildID(f)
	return m, nil
}

// Section returns the section called name, or nil.
func (m *Module) Section(name string) *Section {
	for i := range m.Sections {
		if m.Sections[i].Name == name {
			return &m.Sections[i]
		}
	}
	return nil
}

// Symbol returns the symbol-table entry at index i (as relocations name it).
func (m *Module) Symbol(i int) (Symbol, bool) {
	if i < 1 || i > len(m.Symbols) {
		return Symbol{}, false
	}
	return m.Symbols[i-1], true
}

// modinfoName reads name= from .modinfo (kernels since 5.2 write it).
func modinfoName(f *elf.File) string {
	s := f.Section(".modinfo")
	if s == nil || s.Type == elf.SHT_NOBITS {
		return ""
	}
	data, err := s.Data()
	if err != nil {
		return ""
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("name=")); ok {
			return string(v)
		}
	}
	return ""
}

// thisModuleName reads struct module's name: it follows an enum (4 bytes,
// padded to 8) and a list_head (16 bytes) on 64-bit kernels.
func thisModuleName(f *elf.File) string {
	const off, nameLen = 24, 56 // MODULE_NAME_LEN is 64 - sizeof(unsigned long)
	s := f.Section(".gnu.linkonce.this_module")
	if s == nil || s.Type == elf.SHT_NOBITS || f.Class != elf.ELFCLASS64 {
		return ""
	}
	data, err := s.Data()
	if err != nil || len(data) < off+nameLen {
		return ""
	}
	name := data[off : off+nameLen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name)
}

// buildID reads NT_GNU_BUILD_ID from .note.gnu.build-id.
func buildID(f *elf.File) string {
	s := f.Section(".note.gnu.build-id")
	if s == nil || s.Type != elf.SHT_NOTE {
		return ""
	}
	data, err := s.Data()
	if err != nil {
		return ""
	}
	return BuildIDFromNotes(data, f.ByteOrder)
}

// BuildIDFromNotes finds the GNU build-id in the bytes of an ELF note
// section: a module file's .note.gnu.build-id, or the kernel's copy of it
// for a loaded module, /sys/module/NAME/notes/.note.gnu.build-id. It
// returns "" when there is none or the notes are malformed.
func BuildIDFromNotes(data []byte, bo binary.ByteOrder) string {
	for len(data) >= 12 {
		namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		nameEnd := 12 + align4(uint64(namesz))
		descEnd := nameEnd + align4(uint64(descsz))
		if descEnd > uint64(len(data)) || uint64(12+namesz) > uint64(len(data)) {
			return ""
		}
		name := strings.TrimRight(string(data[12:12+namesz]), "\x00")
		if typ == 3 /* NT_GNU_BUILD_ID */ && name == "GNU" {
			return hex.EncodeToString(data[nameEnd : nameEnd+uint64(descsz)])
		}
		data = data[descEnd:]
	}
	return ""
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// IsInitSection tells whether the kernel frees a section after the module's
// init returns: the kernel's own rule (module_init_layout_section) is a name
// starting with ".init".
func IsInitSection(name string) bool { return strings.HasPrefix(name, ".init") }

// IsInitText tells whether a section holds __init code.
func (s Section) IsInitText() bool {
	return s.Flags&elf.SHF_EXECINSTR != 0 && IsInitSection(s.Name)
}

// IsExitSection tells whether a section holds __exit code or data: kept
// with CONFIG_MODULE_UNLOAD, only run on unload.
func IsExitSection(name string) bool { return strings.HasPrefix(name, ".exit") }

// kernelManaged are sections of addresses that the kernel or the build
// consumes itself (patch sites, exception and unwind tables, export
// tables): a reference from them into init text is the kernel's own
// bookkeeping, freed or ignored with init, never a pointer a module calls.
var kernelManaged = map[string]bool{
	"__mcount_loc":                 true, // ftrace call sites
	"__patchable_function_entries": true, // ftrace call sites (-fpatchable-function-entry)
	".parainstructions":            true, // paravirt patch sites
	".altinstructions":             true, // alternatives patch sites
	".altinstr_replacement":        true, // alternatives replacement code
	".retpoline_sites":             true, // objtool: indirect-thunk call sites
	".return_sites":                true, // objtool: return thunk sites
	".call_sites":                  true, // objtool: call depth tracking sites
	".ibt_endbr_seal":              true, // objtool: ENDBR to seal
	".static_call_sites":           true, // static call patch sites
	".smp_locks":                   true, // LOCK prefixes to patch on UP
	"__jump_table":                 true, // static key patch sites
	"__bug_table":                  true, // BUG()/WARN() sites
	"__ex_table":                   true, // exception fixups
	".orc_unwind":                  true, // ORC unwinder
	".orc_unwind_ip":               true,
	".orc_header":                  true,
	".kcfi_traps":                  true, // kCFI trap sites
	"__ksymtab":                    true, // exports
	"__ksymtab_gpl":                true,
	"__ksymtab_strings":            true,
	"__kcrctab":                    true,
	"__kcrctab_gpl":                true,
	"__versions":                   true,
	".modinfo":                     true,
	".BTF":                         true,
	".BTF_ids":                     true,
	".comment":                     true,
}

// IsKernelManaged tells whether a section is one of the kernel's or the
// build's own tables, which may name init code legitimately.
func IsKernelManaged(name string) bool {
	return kernelManaged[name] || strings.HasPrefix(name, ".note") || strings.HasPrefix(name, ".rela") ||
		strings.HasPrefix(name, ".debug")
}

// IsPersistentData tells whether a section is data that outlives init:
// allocated, not code, not freed with init, not a kernel-managed table,
// not .exit (freed with the module) and not the module structure itself
// (its init pointer is the kernel's own reference).
func (s Section) IsPersistentData() bool {
	if s.Flags&elf.SHF_ALLOC == 0 || s.Flags&elf.SHF_EXECINSTR != 0 {
		return false
	}
	if IsInitSection(s.Name) || IsExitSection(s.Name) || IsKernelManaged(s.Name) || s.Name == ThisModuleSection {
		return false
	}
	return true
}

// ThisModuleSection holds struct module, whose init field points at the
// module's init function by design.
const ThisModuleSection = ".gnu.linkonce.this_module"

// InitTextSections returns the sections of __init code.
func (m *Module) InitTextSections() []Section {
	var out []Section
	for _, s := range m.Sections {
		if s.IsInitText() {
			out = append(out, s)
		}
	}
	return out
}

// PersistentDataSections returns the data sections that outlive init.
func (m *Module) PersistentDataSections() []Section {
	var out []Section
	for _, s := range m.Sections {
		if s.IsPersistentData() {
			out = append(out, s)
		}
	}
	return out
}

// IsPadding tells whether a symbol only marks padding before a function:
// __pfx_ (function padding for call depth tracking, 6.2+) and __cfi_ (kCFI
// type hashes). They are never a function's name.
func IsPadding(name string) bool {
	return strings.HasPrefix(name, "__pfx_") || strings.HasPrefix(name, "__cfi_")
}

// moduleAliases are the names module_init()/module_exit() give the init and
// exit functions on top of their own.
var moduleAliases = map[string]bool{"init_module": true, "cleanup_module": true}

// Functions returns the function symbols defined in section secIdx, padding
// symbols left out, sorted by offset; of several names at one offset the
// function's own name comes first, before the init_module alias.
func (m *Module) Functions(secIdx elf.SectionIndex) []Symbol {
	var out []Symbol
	for _, s := range m.Symbols {
		if s.SecIdx == secIdx && s.Type == elf.STT_FUNC && !IsPadding(s.Name) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Value != out[j].Value {
			return out[i].Value < out[j].Value
		}
		return !moduleAliases[out[i].Name] && moduleAliases[out[j].Name]
	})
	return out
}

// InitFunctions returns the functions in __init text, with their offsets in
// their section.
func (m *Module) InitFunctions() []Symbol {
	var out []Symbol
	for _, s := range m.InitTextSections() {
		out = append(out, m.Functions(elf.SectionIndex(s.Index))...)
	}
	return out
}

// FunctionAt names the function covering offset off of section secIdx, and
// the offset into it. Padding symbols are never returned; an offset in
// padding before a function belongs to no function.
func (m *Module) FunctionAt(secIdx elf.SectionIndex, off uint64) (Symbol, uint64, bool) {
	return symbolAt(m.Functions(secIdx), off)
}

// ObjectAt names the data object covering offset off of section secIdx.
func (m *Module) ObjectAt(secIdx elf.SectionIndex, off uint64) (Symbol, uint64, bool) {
	var objs []Symbol
	for _, s := range m.Symbols {
		if s.SecIdx == secIdx && s.Type == elf.STT_OBJECT {
			objs = append(objs, s)
		}
	}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].Value < objs[j].Value })
	return symbolAt(objs, off)
}

func symbolAt(sorted []Symbol, off uint64) (Symbol, uint64, bool) {
	// The last symbol starting at or before off that covers it; a zero
	// size symbol covers only its own address.
	for i := len(sorted) - 1; i >= 0; i-- {
		s := sorted[i]
		if s.Value > off {
			continue
		}
		if off < s.Value+s.Size || off == s.Value {
			// Prefer the first of several names at this offset.
			for i > 0 && sorted[i-1].Value == s.Value && sorted[i-1].Size == s.Size {
				i--
				s = sorted[i]
			}
			return s, off - s.Value, true
		}
	}
	return Symbol{}, 0, false
}

// SectionData returns a section's contents (nil for .bss and friends).
func (m *Module) SectionData(idx int) ([]byte, error) {
	if idx <= 0 || idx >= len(m.ELF.Sections) {
		return nil, fmt.Errorf("no section %d", idx)
	}
	s := m.ELF.Sections[idx]
	if s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	if s.Size > MaxSize {
		return nil, fmt.Errorf("section %s: %w", s.Name, ErrTooLarge)
	}
	return s.Data()
}

// ByteOrder is the module's byte order.
func (m *Module) ByteOrder() binary.ByteOrder { return m.ELF.ByteOrder }
