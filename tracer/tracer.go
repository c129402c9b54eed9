// Package tracer loads ktracer's BPF programs, attaches each hook by the best
// method the running kernel accepts, and reads raw records from the ring
// buffer. It knows the kernel; it knows nothing of findings.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ktracer/ktracer/bpf"
)

// HookStatus says how a hook was attached, or why it was not.
type HookStatus struct {
	Hook     string
	Required bool
	Attached bool
	Method   Method // empty when not attached
	Target   string
	Degraded string // what the attached variant gives up, if anything
	Err      error  // every method's failure, when not attached
}

// Tracer owns the loaded programs, their links and the ring buffer reader.
type Tracer struct {
	maps   map[string]*ebpf.Map
	progs  []*ebpf.Program
	links  []link.Link
	reader *ringbuf.Reader
	hooks  []HookStatus
	params sync.WaitGroup // the kallsyms look-up filling the params map

	// readerMu guards closing the reader against RingBufferFill: the
	// ring's memory is unmapped on close, and reading it then faults.
	readerMu     sync.RWMutex
	readerClosed bool
}

// sharedMaps are created once and shared by every program variant.
var sharedMaps = []string{bpf.KtMapEvents, bpf.KtMapCounters, bpf.KtMapInitcallStarts, bpf.KtMapLoading, bpf.KtMapScanBufs, bpf.KtMapParams, bpf.KtMapLoadStates, bpf.KtMapLoadZero, bpf.KtMapLoadArgs}

// Options tune how hooks are attached.
type Options struct {
	// Strict makes any hook that cannot attach fatal, not only required ones.
	Strict bool
	// Methods, when set, restricts attaching to these methods, e.g. to
	// exercise the kprobe fallbacks on a kernel that has the tracepoints.
	Methods []Method
}

// New checks that this kernel and process can trace at all, loads the
// programs and attaches every hook it can. A hook that attaches by no method
// is reported in Hooks; if it is required (or Strict is set) New fails with
// an *UnsupportedError that names what is missing in one line.
func New(opts Options) (*Tracer, error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, &UnsupportedError{Reason: fmt.Sprintf("cannot raise RLIMIT_MEMLOCK for BPF maps: %v", err)}
	}
	spec, err := bpf.LoadKt()
	if err != nil {
		return nil, err
	}
	t := &Tracer{maps: map[string]*ebpf.Map{}}
	if err := t.createMaps(spec); err != nil {
		t.Close()
		return nil, err
	}
	t.attachAll(spec, opts.Methods)
	// The parsed kernel BTF (tens of MB) is garbage now: give it back to the
	// kernel at once rather than whenever the scavenger gets to it, so a
	// long-running daemon stays small.
	spec = nil
	debug.FreeOSMemory()

	if err := t.checkHooks(opts.Strict); err != nil {
		t.Close()
		return nil, err
	}
	t.reader, err = ringbuf.NewReader(t.maps[bpf.KtMapEvents])
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	// Only the panic path needs these addresses: find them without
	// delaying start-up.
	t.params.Add(1)
	go func() {
		defer t.params.Done()
		t.fillParams()
	}()
	return t, nil
}

func (t *Tracer) createMaps(spec *ebpf.CollectionSpec) error {
	only := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}, ByteOrder: spec.ByteOrder, Types: spec.Types}
	for _, name := range sharedMaps {
		only.Maps[name] = spec.Maps[name]
	}
	coll, err := ebpf.NewCollection(only)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return &UnsupportedError{Reason: "creating BPF maps was refused: ktracer needs root, or CAP_BPF and CAP_PERFMON"}
		}
		return fmt.Errorf("create BPF maps: %w", err)
	}
	for _, name := range sharedMaps {
		t.maps[name] = coll.DetachMap(name)
	}
	coll.Close()
	return nil
}

// attachAll shares one kernel BTF cache between all program loads; it is
// dropped on return so a long-running daemon does not keep the parsed kernel
// BTF (tens of MB) resident.
func (t *Tracer) attachAll(spec *ebpf.CollectionSpec, methods []Method) {
	cache := btf.NewCache()
	for _, h := range hooks {
		t.hooks = append(t.hooks, t.attach(spec, h, methods, cache))
	}
}

// attach tries a hook's candidates in order and keeps the first that loads
// and attaches.
func (t *Tracer) attach(spec *ebpf.CollectionSpec, h hook, methods []Method, cache *btf.Cache) HookStatus {
	st := HookStatus{Hook: h.name, Required: h.required}
	var errs []error
	for _, c := range h.candidates {
		if len(methods) > 0 && !slices.Contains(methods, c.method) {
			errs = append(errs, fmt.Errorf("%s %s: excluded by the allowed methods", c.method, c.target))
			continue
		}
		if c.entry != "" && len(methods) > 0 && !slices.Contains(methods, Kprobe) {
			errs = append(errs, fmt.Errorf("%s %s: its entry kprobe is excluded by the allowed methods", c.method, c.target))
			continue
		}
		prog, err := t.loadProgram(spec, c.prog, cache)
		if err == nil {
			var ls []link.Link
			var entry *ebpf.Program
			ls, entry, err = t.attachCandidate(spec, prog, c, cache)
			if err == nil {
				t.progs = append(t.progs, prog)
				if entry != nil {
					t.progs = append(t.progs, entry)
				}
				t.links = append(t.links, ls...)
				st.Attached, st.Method, st.Target, st.Degraded = true, c.method, c.target, c.degraded
				st.Err = errors.Join(errs...) // why better variants failed
				return st
			}
			prog.Close()
		}
		errs = append(errs, fmt.Errorf("%s %s: %w", c.method, c.target, explainPerm(c.method, err)))
	}
	st.Err = errors.Join(errs...)
	return st
}

// explainPerm says why a kprobe was refused to a process with CAP_PERFMON:
// kprobes go through perf_event_open, which Debian's perf_event_paranoid=3
// (a Debian patch) reserves to CAP_SYS_ADMIN.
func explainPerm(m Method, err error) error {
	if (m != Kprobe && m != Kretprobe) || !errors.Is(err, os.ErrPermission) {
		return err
	}
	b, rerr := os.ReadFile(paranoidPath)
	if rerr != nil {
		return err
	}
	level := strings.TrimSpace(string(b))
	if level == "3" {
		return fmt.Errorf("%w (kernel.perf_event_paranoid is 3, which reserves perf events, and so kprobes, to CAP_SYS_ADMIN: run as root, or set it to 2)", err)
	}
	return fmt.Errorf("%w (kprobes need CAP_PERFMON; kernel.perf_event_paranoid is %s)", err, level)
}

// attachCandidate attaches c's entry kprobe, if it has one, then prog.
func (t *Tracer) attachCandidate(spec *ebpf.CollectionSpec, prog *ebpf.Program, c candidate, cache *btf.Cache) ([]link.Link, *ebpf.Program, error) {
	var entry *ebpf.Program
	var links []link.Link
	if c.entry != "" {
		var err error
		if entry, err = t.loadProgram(spec, c.entry, cache); err != nil {
			return nil, nil, fmt.Errorf("entry kprobe: %w", err)
		}
		l, err := link.Kprobe(c.target, entry, nil)
		if err != nil {
			entry.Close()
			return nil, nil, fmt.Errorf("entry kprobe: %w", err)
		}
		links = append(links, l)
	}
	l, err := attachProgram(prog, c)
	if err != nil {
		for _, l := range links {
			l.Close()
		}
		if entry != nil {
			entry.Close()
		}
		return nil, nil, err
	}
	return append(links, l), entry, nil
}

func (t *Tracer) loadProgram(spec *ebpf.CollectionSpec, name string, cache *btf.Cache) (*ebpf.Program, error) {
	ps, ok := spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("program %s missing from the BPF object", name)
	}
	sub := &ebpf.CollectionSpec{
		Maps:      map[string]*ebpf.MapSpec{},
		Programs:  map[string]*ebpf.ProgramSpec{name: ps},
		ByteOrder: spec.ByteOrder,
		Types:     spec.Types,
	}
	for _, m := range sharedMaps {
		sub.Maps[m] = spec.Maps[m]
	}
	coll, err := ebpf.NewCollectionWithOptions(sub, ebpf.CollectionOptions{MapReplacements: t.maps, Cache: cache})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("verifier rejected %s: %+v", name, ve)
		}
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

func attachProgram(prog *ebpf.Program, c candidate) (link.Link, error) {
	switch c.method {
	case RawTracepoint:
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: c.target, Program: prog})
	case Fentry, Fexit:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case Kprobe:
		return link.Kprobe(c.target, prog, nil)
	case Kretprobe:
		return link.Kretprobe(c.target, prog, nil)
	}
	return nil, fmt.Errorf("unknown attach method %q", c.method)
}

func (t *Tracer) checkHooks(strict bool) error {
	var missing []string
	for _, h := range t.hooks {
		if !h.Attached && (h.Required || strict) {
			missing = append(missing, h.Hook)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &UnsupportedError{
		Reason: fmt.Sprintf("cannot attach %s: %s", strings.Join(missing, ", "), kernelGaps()),
		Hooks:  t.hooks,
	}
}

// Hooks reports every hook's attach method or failure.
func (t *Tracer) Hooks() []HookStatus { return t.hooks }

// Read hands every ring-buffer record to handle, in order, until ctx is
// done or Drain was called, and then every record already in the ring
// buffer: a stop loses nothing. It also returns when handle fails. The slice
// is reused: handle must not keep it. It returns nil on a clean end.
func (t *Tracer) Read(ctx context.Context, handle func(raw []byte) error) error {
	stop := context.AfterFunc(ctx, func() { t.Drain() })
	defer stop()
	var rec ringbuf.Record
	for {
		err := t.reader.ReadInto(&rec)
		switch {
		case err == nil:
			if err := handle(rec.RawSample); err != nil {
				return err
			}
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, ringbuf.ErrFlushed):
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// Drain makes Read return once every record already in the ring buffer has
// been handed on.
func (t *Tracer) Drain() error {
	t.readerMu.RLock()
	defer t.readerMu.RUnlock()
	if t.reader == nil || t.readerClosed {
		return nil
	}
	return t.reader.Flush()
}

// RingBufferFill is the fraction of the ring buffer waiting to be read; 0
// once reading has stopped. Safe to call from any goroutine.
func (t *Tracer) RingBufferFill() float64 {
	t.readerMu.RLock()
	defer t.readerMu.RUnlock()
	if t.reader == nil || t.readerClosed {
		return 0
	}
	return float64(t.reader.AvailableBytes()) / float64(t.reader.BufferSize())
}

func (t *Tracer) closeReader() {
	t.readerMu.Lock()
	defer t.readerMu.Unlock()
	if t.reader != nil && !t.readerClosed {
		t.reader.Close()
		t.readerClosed = true
	}
}

// Counters sums the per-CPU counters kept by the BPF programs.
type Counters struct {
	Lost             uint64 // records dropped because the ring buffer was full
	ScanTruncated    uint64 // data scans that hit their bound
	SymbolsTruncated uint64 // symbol walks without bpf_loop that hit their bound
}

// Counters reads the BPF-side counters.
func (t *Tracer) Counters() (Counters, error) {
	var c Counters
	for idx, dst := range map[uint32]*uint64{
		uint32(bpf.KtCounterCOUNTER_RINGBUF_FULL):      &c.Lost,
		uint32(bpf.KtCounterCOUNTER_SCAN_TRUNCATED):    &c.ScanTruncated,
		uint32(bpf.KtCounterCOUNTER_SYMBOLS_TRUNCATED): &c.SymbolsTruncated,
	} {
		var perCPU []uint64
		if err := t.maps[bpf.KtMapCounters].Lookup(idx, &perCPU); err != nil {
			return c, fmt.Errorf("read counters: %w", err)
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	return c, nil
}

// Close detaches every hook and frees the programs and maps.
func (t *Tracer) Close() error {
	t.params.Wait()
	t.closeReader()
	for _, l := range t.links {
		l.Close()
	}
	for _, p := range t.progs {
		p.Close()
	}
	for _, m := range t.maps {
		m.Close()
	}
	return nil
}
