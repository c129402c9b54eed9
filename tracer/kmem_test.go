package tracer

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ktracer/ktracer/bpf"
)

// The kernel-memory reader's object: one raw tracepoint program (run with
// BPF_PROG_TEST_RUN, never attached) and its one-value buffer.
func TestKmemSpec(t *testing.T) {
	spec, err := bpf.LoadKmem()
	if err != nil {
		t.Fatal(err)
	}
	p := spec.Programs[bpf.KmemProgKmemRead]
	if p == nil || p.Type != ebpf.RawTracepoint {
		t.Fatalf("program %s: %+v", bpf.KmemProgKmemRead, p)
	}
	m := spec.Maps[bpf.KmemMapKmemBuf]
	if m == nil || m.Type != ebpf.Array || m.MaxEntries != 1 || int(m.ValueSize) != 8+KernelMemoryChunk {
		t.Fatalf("map %s: %+v", bpf.KmemMapKmemBuf, m)
	}
	if len(spec.Programs) != 1 || len(spec.Maps) != 1 {
		t.Errorf("the reader should load one program and one map, not %d and %d", len(spec.Programs), len(spec.Maps))
	}
}
