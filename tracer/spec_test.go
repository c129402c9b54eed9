package tracer

import (
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ktracer/ktracer/bpf"
)

// The compiled object has every program the hooks name, of the type their
// attach method needs, and the maps the tracer shares between them.
func TestSpecHasHookPrograms(t *testing.T) {
	spec, err := bpf.LoadKt()
	if err != nil {
		t.Fatal(err)
	}
	want := map[Method]ebpf.ProgramType{
		RawTracepoint: ebpf.RawTracepoint,
		Kprobe:        ebpf.Kprobe,
		Kretprobe:     ebpf.Kprobe,
		Fentry:        ebpf.Tracing,
		Fexit:         ebpf.Tracing,
	}
	for _, h := range hooks {
		if len(h.candidates) == 0 {
			t.Errorf("hook %s has no candidates", h.name)
		}
		for _, c := range h.candidates {
			p, ok := spec.Programs[c.prog]
			if !ok {
				t.Errorf("hook %s: program %s missing from the object", h.name, c.prog)
				continue
			}
			if p.Type != want[c.method] {
				t.Errorf("hook %s: program %s is %s, want %s for %s", h.name, c.prog, p.Type, want[c.method], c.method)
			}
			if (c.method == Fentry || c.method == Fexit) && p.AttachTo != c.target {
				t.Errorf("hook %s: %s attaches to %q, want %q", h.name, c.prog, p.AttachTo, c.target)
			}
			if c.entry == "" {
				continue
			}
			if e, ok := spec.Programs[c.entry]; !ok || e.Type != ebpf.Kprobe || c.method != Kretprobe {
				t.Errorf("hook %s: entry %s of %s must be a kprobe program before a kretprobe", h.name, c.entry, c.prog)
			}
		}
	}
	for _, m := range sharedMaps {
		if _, ok := spec.Maps[m]; !ok {
			t.Errorf("map %s missing from the object", m)
		}
	}
}

// Go never mirrors a C struct by hand, but the generated types must still
// match the object's BTF byte for byte: the decoder copies records over them.
func TestGeneratedTypesMatchBTF(t *testing.T) {
	spec, err := bpf.LoadKt()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{
		"event_header":        bpf.KtEventHeader{},
		"module_load_event":   bpf.KtModuleLoadEvent{},
		"module_symbol_event": bpf.KtModuleSymbolEvent{},
		"initcall_event":      bpf.KtInitcallEvent{},
		"module_done_event":   bpf.KtModuleDoneEvent{},
		"module_free_event":   bpf.KtModuleFreeEvent{},
		"init_pointer_event":  bpf.KtInitPointerEvent{},
		"exec_fault_event":    bpf.KtExecFaultEvent{},
		"oops_event":          bpf.KtOopsEvent{},
		"warning_event":       bpf.KtWarningEvent{},
		"bad_page_event":      bpf.KtBadPageEvent{},
		"panic_event":         bpf.KtPanicEvent{},
		"crash_event":         bpf.KtCrashEvent{},
		"load_failed_event":   bpf.KtLoadFailedEvent{},
	} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(name, &s); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		goType := reflect.TypeOf(v)
		if got := uintptr(s.Size); got != goType.Size() {
			t.Errorf("%s: BTF size %d, Go %s size %d", name, got, goType.Name(), goType.Size())
		}
		// Every BTF member at the same offset as the Go field of its
		// position (the generated structs start with a zero-size marker).
		var fields []reflect.StructField
		for i := 0; i < goType.NumField(); i++ {
			if f := goType.Field(i); f.Type.Size() != 0 {
				fields = append(fields, f)
			}
		}
		if len(fields) != len(s.Members) {
			t.Errorf("%s: %d BTF members, %d Go fields", name, len(s.Members), len(fields))
			continue
		}
		for i, m := range s.Members {
			if uintptr(m.Offset.Bytes()) != fields[i].Offset {
				t.Errorf("%s.%s: BTF offset %d, Go %s offset %d", name, m.Name, m.Offset.Bytes(), fields[i].Name, fields[i].Offset)
			}
		}
	}
}
