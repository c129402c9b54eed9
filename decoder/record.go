// Package decoder turns raw ring-buffer records into typed events and
// findings. It is pure Go: no syscalls, no files, no clock, so every rule is
// unit-testable anywhere.
package decoder

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/ktracer/ktracer/bpf"
)

// Type is a record's kind, from its header.
type Type = bpf.KtEventType

// Record is a decoded ring-buffer record. Only the member for Header.Type is
// valid; the others keep stale values so decoding never allocates.
type Record struct {
	Header      bpf.KtEventHeader
	ModuleLoad  bpf.KtModuleLoadEvent
	Symbol      bpf.KtModuleSymbolEvent
	Initcall    bpf.KtInitcallEvent // start and finish
	ModuleDone  bpf.KtModuleDoneEvent
	ModuleFree  bpf.KtModuleFreeEvent
	InitPointer bpf.KtInitPointerEvent
	ExecFault   bpf.KtExecFaultEvent
	Oops        bpf.KtOopsEvent
	Warning     bpf.KtWarningEvent
	BadPage     bpf.KtBadPageEvent
	Panic       bpf.KtPanicEvent
	Crash       bpf.KtCrashEvent // crash kexec and emergency restart
	LoadFailed  bpf.KtLoadFailedEvent
}

// ErrCorrupt is wrapped by every decoding error: the record is counted and
// skipped, the stream goes on.
var ErrCorrupt = errors.New("corrupt record")

var headerSize = int(unsafe.Sizeof(bpf.KtEventHeader{}))

// Decode fills r from one raw record. The record's size must match both its
// header and the generated type for its kind exactly.
func Decode(raw []byte, r *Record) error {
	if len(raw) < headerSize {
		return fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrCorrupt, len(raw), headerSize)
	}
	copyInto(&r.Header, raw[:headerSize])
	if int(r.Header.Size) != len(raw) {
		return fmt.Errorf("%w: header says %d bytes, record has %d", ErrCorrupt, r.Header.Size, len(raw))
	}
	var ok bool
	switch Type(r.Header.Type) {
	case bpf.KtEventTypeEVENT_MODULE_LOAD:
		ok = copyInto(&r.ModuleLoad, raw)
	case bpf.KtEventTypeEVENT_MODULE_SYMBOL:
		ok = copyInto(&r.Symbol, raw)
	case bpf.KtEventTypeEVENT_INITCALL_START, bpf.KtEventTypeEVENT_INITCALL_FINISH:
		ok = copyInto(&r.Initcall, raw)
	case bpf.KtEventTypeEVENT_MODULE_INIT_DONE:
		ok = copyInto(&r.ModuleDone, raw)
	case bpf.KtEventTypeEVENT_MODULE_FREE:
		ok = copyInto(&r.ModuleFree, raw)
	case bpf.KtEventTypeEVENT_INIT_POINTER:
		ok = copyInto(&r.InitPointer, raw)
	case bpf.KtEventTypeEVENT_EXEC_FAULT:
		ok = copyInto(&r.ExecFault, raw)
	case bpf.KtEventTypeEVENT_OOPS:
		ok = copyInto(&r.Oops, raw)
	case bpf.KtEventTypeEVENT_WARNING:
		ok = copyInto(&r.Warning, raw)
	case bpf.KtEventTypeEVENT_BAD_PAGE:
		ok = copyInto(&r.BadPage, raw)
	case bpf.KtEventTypeEVENT_PANIC:
		ok = copyInto(&r.Panic, raw)
	case bpf.KtEventTypeEVENT_CRASH_KEXEC, bpf.KtEventTypeEVENT_EMERGENCY_RESTART:
		ok = copyInto(&r.Crash, raw)
	case bpf.KtEventTypeEVENT_LOAD_FAILED:
		ok = copyInto(&r.LoadFailed, raw)
	default:
		return fmt.Errorf("%w: unknown record type %d", ErrCorrupt, r.Header.Type)
	}
	if !ok {
		return fmt.Errorf("%w: type %d record has %d bytes", ErrCorrupt, r.Header.Type, len(raw))
	}
	return nil
}

// copyInto copies raw over *dst when the sizes match exactly. The generated
// types mirror the C structs byte for byte (host layout, little endian), so
// a copy is the whole decoding; it allocates nothing and needs no alignment.
func copyInto[T any](dst *T, raw []byte) bool {
	size := int(unsafe.Sizeof(*dst))
	if len(raw) != size {
		return false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(dst)), size), raw)
	return true
}

// Encode is Decode's inverse for one generated record type, used by tests,
// fuzz seeds and benchmarks to build records from the generated Go types.
func Encode[T any](v *T) []byte {
	size := int(unsafe.Sizeof(*v))
	out := make([]byte, size)
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(v)), size))
	return out
}

// cString converts a NUL-terminated C char array to a string.
func cString(b []int8) string {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), n))
}

// cBytes returns the bytes of a NUL-terminated C char array, without copying.
func cBytes(b []int8) []byte {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), n)
}
