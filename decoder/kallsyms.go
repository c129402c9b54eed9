package decoder

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// KernelSymbols resolves core-kernel text addresses from a kallsyms listing
// and knows the kernel's own init text range (_sinittext.._einittext), which
// is freed after boot.
type KernelSymbols struct {
	syms     []ksym // sorted by address
	initText Range
}

type ksym struct {
	addr uint64
	name string
}

// ParseKallsyms reads /proc/kallsyms text. Only text symbols of the core
// kernel are kept: module symbols come from the load-time capture. Lines
// that do not parse are an error naming the line, not a silent skip.
func ParseKallsyms(r io.Reader) (*KernelSymbols, error) {
	ks := &KernelSymbols{}
	var sinit, einit uint64
	err := eachKallsym(r, func(addr uint64, kind byte, name, module string) {
		if module != "" {
			return
		}
		switch name {
		case "_sinittext":
			sinit = addr
		case "_einittext":
			einit = addr
		}
		if kind == 't' || kind == 'T' {
			ks.syms = append(ks.syms, ksym{addr, name})
		}
	})
	if err != nil {
		return nil, err
	}
	if einit > sinit {
		ks.initText = Range{sinit, einit - sinit}
	}
	slices.SortStableFunc(ks.syms, func(a, b ksym) int { return cmp.Compare(a.addr, b.addr) })
	return ks, nil
}

// ParseModuleKallsyms returns each loaded module's symbols from a
// /proc/kallsyms listing: the live names of modules loaded before ktracer
// started (kallsyms has no sizes, and no __init names once init is freed).
func ParseModuleKallsyms(r io.Reader) (map[string][]ModuleSymbol, error) {
	out := map[string][]ModuleSymbol{}
	err := eachKallsym(r, func(addr uint64, kind byte, name, module string) {
		if module != "" && len(out[module]) < maxSymbolsPerModule {
			out[module] = append(out[module], ModuleSymbol{Name: name, Addr: addr, Kind: kind})
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachKallsym parses kallsyms lines, "addr type name" or "addr type
// name\t[module]", and hands each to fn.
func eachKallsym(r io.Reader, fn func(addr uint64, kind byte, name, module string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	nonzero := false
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		addrText, rest, ok1 := strings.Cut(line, " ")
		kind, name, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || len(kind) != 1 || name == "" {
			return fmt.Errorf("kallsyms line %d: malformed %q", n, line)
		}
		addr, err := strconv.ParseUint(addrText, 16, 64)
		if err != nil {
			return fmt.Errorf("kallsyms line %d: bad address %q", n, addrText)
		}
		nonzero = nonzero || addr != 0
		module := ""
		if sym, mod, ok := strings.Cut(name, "\t"); ok {
			name = sym
			module = strings.TrimSuffix(strings.TrimPrefix(mod, "["), "]")
			if module == "" {
				continue
			}
		}
		fn(addr, kind[0], name, module)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read kallsyms: %w", err)
	}
	if n > 0 && !nonzero {
		return fmt.Errorf("kallsyms addresses are all zero: reading them needs root (kptr_restrict)")
	}
	return nil
}

// Symbolize names the kernel text symbol at or below addr.
func (k *KernelSymbols) Symbolize(addr uint64) (string, uint64, bool) {
	i, _ := slices.BinarySearchFunc(k.syms, addr+1, func(s ksym, a uint64) int { return cmp.Compare(s.addr, a) })
	if i == 0 {
		return "", 0, false
	}
	// Past the last symbol (module space, vmalloc) is not kernel text.
	if i == len(k.syms) && addr-k.syms[i-1].addr > 1<<20 {
		return "", 0, false
	}
	i--
	for i > 0 && k.syms[i-1].addr == k.syms[i].addr {
		i--
	}
	return k.syms[i].name, addr - k.syms[i].addr, true
}

// InitText is the kernel's own init text, freed once boot finishes.
func (k *KernelSymbols) InitText() Range { return k.initText }

// LazyKernelSymbols parses kallsyms on first use: most sessions never need
// it, and parsing costs tens of milliseconds and megabytes.
type LazyKernelSymbols struct {
	open func() (io.ReadCloser, error)
	once sync.Once
	ks   *KernelSymbols
	err  error
}

// NewLazyKernelSymbols returns a Symbolizer that calls open (for
// /proc/kallsyms) the first time it is asked anything.
func NewLazyKernelSymbols(open func() (io.ReadCloser, error)) *LazyKernelSymbols {
	return &LazyKernelSymbols{open: open}
}

func (l *LazyKernelSymbols) load() *KernelSymbols {
	l.once.Do(func() {
		r, err := l.open()
		if err != nil {
			l.err = err
			return
		}
		defer r.Close()
		l.ks, l.err = ParseKallsyms(r)
	})
	return l.ks
}

// Symbolize implements Symbolizer.
func (l *LazyKernelSymbols) Symbolize(addr uint64) (string, uint64, bool) {
	if ks := l.load(); ks != nil {
		return ks.Symbolize(addr)
	}
	return "", 0, false
}

// InitText implements Symbolizer.
func (l *LazyKernelSymbols) InitText() Range {
	if ks := l.load(); ks != nil {
		return ks.InitText()
	}
	return Range{}
}
