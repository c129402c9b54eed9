// Package loaded recovers what a tracer that starts late has not seen: the
// modules already loaded (by udev at boot, or before a restart). It reads
// /proc/modules, /sys/module/NAME/sections and notes, /proc/kallsyms and each
// module's file (found through modules.dep, proven the same build by its
// build-id), and the modules' persistent data through a kernel-memory
// reader; the decoder judges these facts. It also keeps the daemon's state:
// the __init names of modules loaded while it ran.
package loaded

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/kofile"
)

// Options say where to read and what to scan.
type Options struct {
	Root          string // "/" on a live system; a captured tree in tests
	KernelRelease string // uname -r: where modules.dep is
	// ReadMemory reads kernel memory for the data scan; nil: no scan.
	ReadMemory func(addr uint64, b []byte) error
	// MaxScan bounds the bytes read for the scan, all modules together.
	MaxScan int64
	// State is the daemon's record of modules loaded while it ran (this
	// boot only): __init names a restarted daemon cannot read elsewhere.
	State []decoder.LoadedModule
}

// DefaultMaxScan is plenty: a loaded system's module data is a few MiB.
const DefaultMaxScan = 64 << 20

// maxSectionScan bounds one section's scan: larger ones are tables, not
// the few pointers a driver keeps.
const maxSectionScan = 16 << 20

// Result is the recovered modules, oldest first, and what the audit did.
type Result struct {
	Modules []decoder.LoadedModule
	Scanned int64         // bytes of persistent data read
	Took    time.Duration // reading everything, the scan included
	// Notes say what could not be done for all modules (no memory
	// reader, the scan bound reached); one line each.
	Notes []string
}

// Recover reads every module in /proc/modules that finished loading.
func Recover(o Options) (*Result, error) {
	t0 := time.Now()
	if o.Root == "" {
		o.Root = "/"
	}
	if o.MaxScan == 0 {
		o.MaxScan = DefaultMaxScan
	}
	names, err := liveModules(filepath.Join(o.Root, "proc", "modules"))
	if err != nil {
		return nil, err
	}
	r := &Result{}
	var kall map[string][]decoder.ModuleSymbol
	kallsyms := func() map[string][]decoder.ModuleSymbol {
		if kall == nil {
			kall = map[string][]decoder.ModuleSymbol{}
			if f, err := os.Open(filepath.Join(o.Root, "proc", "kallsyms")); err == nil {
				if k, err := decoder.ParseModuleKallsyms(io.LimitReader(f, 256<<20)); err == nil {
					kall = k
				} else {
					r.Notes = append(r.Notes, "kallsyms: "+err.Error())
				}
				f.Close()
			}
		}
		return kall
	}
	for _, name := range names {
		lm := o.recoverOne(name, kallsyms, r)
		r.Modules = append(r.Modules, lm)
	}
	r.Took = time.Since(t0)
	return r, nil
}

// liveModules lists /proc/modules oldest first (the kernel lists the newest
// first), leaving out modules still loading: the live path sees their init.
func liveModules(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// name size refcount deps state address [taints]
		if len(fields) < 5 || fields[4] != "Live" {
			continue
		}
		names = append(names, fields[0])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	slices.Reverse(names)
	return names, nil
}

// ReadSections reads /sys/module/NAME/sections: each allocated section's
// address. It stays readable after init memory is freed, so .init.text
// still says where the init text was. Root only: others read zeros.
func ReadSections(dir string) (map[string]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	zero := true
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := readSmall(filepath.Join(dir, e.Name()), 64)
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 64)
		if err != nil {
			continue
		}
		zero = zero && v == 0
		out[e.Name()] = v
	}
	if len(out) > 0 && zero {
		return nil, fmt.Errorf("%s: all addresses are zero (reading them needs root)", dir)
	}
	return out, nil
}

// ReadBuildID reads the build-id the kernel keeps of a loaded module,
// /sys/module/NAME/notes/.note.gnu.build-id; "" when there is none.
func ReadBuildID(moduleDir string) (string, error) {
	b, err := readSmall(filepath.Join(moduleDir, "notes", ".note.gnu.build-id"), 4096)
	if err != nil {
		return "", err
	}
	return kofile.BuildIDFromNotes(b, binary.LittleEndian), nil
}

func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

func (o *Options) recoverOne(name string, kallsyms func() map[string][]decoder.ModuleSymbol, r *Result) decoder.LoadedModule {
	lm := decoder.LoadedModule{Name: name}
	dir := filepath.Join(o.Root, "sys", "module", name)
	secs, err := ReadSections(filepath.Join(dir, "sections"))
	if err != nil {
		lm.NoInitNames = "cannot read its sections: " + err.Error()
		fromKallsyms(&lm, kallsyms()[name], nil)
		return lm
	}
	lm.Addr = secs[kofile.ThisModuleSection]

	problem := ""
	var ko *kofile.Module
	path, err := kofile.Locate(o.Root, o.KernelRelease, name)
	if err == nil {
		ko, err = kofile.Open(path)
	}
	running, idErr := ReadBuildID(dir)
	switch {
	case err != nil:
		problem = "no file to name its __init functions: " + err.Error()
	case idErr != nil || running == "":
		problem = "the kernel shows no build-id for it, so " + path + " cannot be proven the same build"
	case ko.BuildID != running:
		problem = fmt.Sprintf("%s is another build (build-id %s, the loaded module's is %s): it was rebuilt or replaced after loading, so its names are not used", rel(o.Root, path), short(ko.BuildID), short(running))
	}
	if problem == "" {
		lm.Origin = rel(o.Root, path)
		fromFile(&lm, ko, secs)
		o.scan(&lm, ko, secs, r)
		return lm
	}
	fromKallsyms(&lm, kallsyms()[name], secs)
	// The daemon's state holds the __init names of modules loaded while
	// it ran: the same module if its struct module and init text are
	// where they were.
	for _, st := range o.State {
		if st.Name == name && st.Addr == lm.Addr && st.Addr != 0 && st.InitText.Size != 0 &&
			(secs[".init.text"] == 0 || st.InitText.Contains(secs[".init.text"])) {
			lm.InitText = st.InitText
			if lm.Data == ([3]decoder.Range{}) {
				lm.Data = st.Data // captured at load: the later modules' reuse is judged by it
			}
			lm.Symbols = append(lm.Symbols, st.Symbols...)
			lm.Origin = "the daemon's state"
			lm.Note = problem
			return lm
		}
	}
	lm.NoInitNames = problem
	return lm
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && root != "/" {
		return "/" + r
	}
	return path
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// fromFile places the file's sections and symbols where sysfs says the
// kernel put them.
func fromFile(lm *decoder.LoadedModule, ko *kofile.Module, secs map[string]uint64) {
	var text, init span
	var data [3]span
	base := map[int]uint64{}
	for _, s := range ko.Sections {
		addr, ok := secs[s.Name]
		if !ok || s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		base[s.Index] = addr
		switch {
		case s.IsInitText():
			init.add(addr, s.Size)
		case kofile.IsInitSection(s.Name):
		case s.Flags&elf.SHF_EXECINSTR != 0:
			text.add(addr, s.Size)
		case s.Name == ".data..ro_after_init" || s.Name == "__jump_table":
			data[2].add(addr, s.Size)
		case s.Flags&elf.SHF_WRITE != 0:
			data[0].add(addr, s.Size)
		case s.Name != kofile.ThisModuleSection:
			data[1].add(addr, s.Size)
		}
	}
	lm.Text, lm.InitText = text.r, init.r
	for i := range data {
		lm.Data[i] = data[i].r
	}
	for _, s := range ko.Symbols {
		b, ok := base[int(s.SecIdx)]
		if !ok || s.Name == "" || kofile.IsPadding(s.Name) || (s.Type != elf.STT_FUNC && s.Type != elf.STT_OBJECT) {
			continue
		}
		sec := ko.Sections[sectionPos(ko, int(s.SecIdx))]
		lm.Symbols = append(lm.Symbols, decoder.ModuleSymbol{Name: s.Name, Addr: b + s.Value, Size: s.Size, Kind: kind(sec, s)})
	}
}

func sectionPos(ko *kofile.Module, idx int) int {
	if idx < len(ko.Sections) && ko.Sections[idx].Index == idx {
		return idx
	}
	for i, s := range ko.Sections {
		if s.Index == idx {
			return i
		}
	}
	return 0
}

// kind is the kallsyms type letter the kernel would give the symbol.
func kind(sec kofile.Section, s kofile.Symbol) byte {
	var k byte
	switch {
	case sec.Flags&elf.SHF_EXECINSTR != 0:
		k = 't'
	case sec.Type == elf.SHT_NOBITS:
		k = 'b'
	case sec.Flags&elf.SHF_WRITE != 0:
		k = 'd'
	default:
		k = 'r'
	}
	if s.Binding == elf.STB_GLOBAL {
		k -= 'a' - 'A'
	}
	return k
}

// fromKallsyms names a module's live code from kallsyms when its file is
// not usable. Its text starts at the lowest core text section sysfs shows
// and ends at the next section that is not core text, or at the end of the
// page of its last text symbol there, whichever comes first. (kallsyms may
// still list a global __init function at its freed address: that is not
// core text.)
func fromKallsyms(lm *decoder.LoadedModule, syms []decoder.ModuleSymbol, secs map[string]uint64) {
	for _, s := range syms {
		if !kofile.IsPadding(s.Name) { // __pfx_/__cfi_: never a function's name
			lm.Symbols = append(lm.Symbols, s)
		}
	}
	var lo, hiSec uint64
	for name, a := range secs {
		if isCoreText(name) && a != 0 {
			if lo == 0 || a < lo {
				lo = a
			}
			hiSec = max(hiSec, a)
		}
	}
	if lo == 0 {
		// No sysfs: the span of its text symbols, to the end of the page.
		var hi uint64
		for _, s := range syms {
			if s.Kind == 't' || s.Kind == 'T' {
				if lo == 0 || s.Addr < lo {
					lo = s.Addr
				}
				hi = max(hi, s.Addr)
			}
		}
		if lo != 0 {
			lm.Text = decoder.Range{Base: lo, Size: (hi+4096)&^4095 - lo}
		}
		return
	}
	next := ^uint64(0)
	for name, a := range secs {
		if !isCoreText(name) && a > hiSec && a < next {
			next = a
		}
	}
	last := hiSec
	for _, s := range syms {
		if (s.Kind == 't' || s.Kind == 'T') && s.Addr >= lo && s.Addr < next {
			last = max(last, s.Addr)
		}
	}
	end := min(next, (last+4096)&^4095)
	lm.Text = decoder.Range{Base: lo, Size: end - lo}
}

// isCoreText tells a section of code that stays after init by its name
// (.text, .text.unlikely, .exit.text, .noinstr.text...): what the kernel
// keeps in the module's core text.
func isCoreText(name string) bool {
	return strings.Contains(name, "text") && !strings.HasPrefix(name, ".init")
}

type span struct{ r decoder.Range }

func (s *span) add(addr, size uint64) {
	if s.r.Size == 0 {
		s.r = decoder.Range{Base: addr, Size: size}
		return
	}
	lo, hi := min(s.r.Base, addr), max(s.r.Base+s.r.Size, addr+size)
	s.r = decoder.Range{Base: lo, Size: hi - lo}
}

// scan reads the module's persistent data (everything allocated that
// outlives init, less the kernel's own tables and struct module).
func (o *Options) scan(lm *decoder.LoadedModule, ko *kofile.Module, secs map[string]uint64, r *Result) {
	if o.ReadMemory == nil || lm.InitText.Size == 0 {
		return
	}
	for _, s := range ko.PersistentDataSections() {
		addr, ok := secs[s.Name]
		if !ok || s.Size == 0 {
			continue
		}
		n := min(s.Size, maxSectionScan)
		if r.Scanned+int64(n) > o.MaxScan {
			r.Notes = appendOnce(r.Notes, fmt.Sprintf("the data scan stopped at its bound of %d MiB", o.MaxScan>>20))
			return
		}
		b := make([]byte, n)
		if err := o.ReadMemory(addr, b); err != nil {
			lm.Note = joinNote(lm.Note, fmt.Sprintf("%s not scanned: %v", s.Name, err))
			continue
		}
		r.Scanned += int64(n)
		lm.Memory = append(lm.Memory, decoder.MemoryChunk{Section: s.Name, Base: addr, Bytes: b})
	}
}

func appendOnce(notes []string, n string) []string {
	if slices.Contains(notes, n) {
		return notes
	}
	return append(notes, n)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// KernelRelease is uname -r, read from /proc (no syscall needed in tests).
func KernelRelease(root string) (string, error) {
	b, err := readSmall(filepath.Join(root, "proc", "sys", "kernel", "osrelease"), 256)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}
