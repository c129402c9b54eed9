package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ktracer/ktracer/bpf"
)

// KernelMemory reads kernel memory through a BPF program run on demand
// (BPF_PROG_TEST_RUN of a raw tracepoint program calling
// bpf_probe_read_kernel): it needs only CAP_BPF and CAP_PERFMON and works in
// containers, unlike /proc/kcore. The startup audit opens one, reads the
// modules' data with it, and closes it.
type KernelMemory struct {
	prog *ebpf.Program
	buf  *ebpf.Map
	mem  *ebpf.Memory // the buffer, mapped; nil: copy it out with Lookup
	val  bpf.KmemKmemChunk
}

// KernelMemoryChunk is the most one Run reads.
const KernelMemoryChunk = len(bpf.KmemKmemChunk{}.Data)

// OpenKernelMemory loads the reader.
func OpenKernelMemory() (*KernelMemory, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise RLIMIT_MEMLOCK: %w", err)
	}
	var objs bpf.KmemObjects
	if err := bpf.LoadKmemObjects(&objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("verifier rejected the kernel-memory reader: %+v", ve)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("load the kernel-memory reader: %w (needs root, or CAP_BPF and CAP_PERFMON)", err)
		}
		return nil, fmt.Errorf("load the kernel-memory reader: %w", err)
	}
	// One empty run: a kernel without raw_tp test runs (before 5.10)
	// refuses it, and is said once here rather than on every read.
	if _, err := objs.KmemRead.Run(&ebpf.RunOptions{Context: []uint64{0, 0}}); err != nil {
		objs.Close()
		return nil, fmt.Errorf("run the kernel-memory reader (BPF_PROG_TEST_RUN of raw_tp needs Linux 5.10): %w", err)
	}
	k := &KernelMemory{prog: objs.KmemRead, buf: objs.KmemBuf}
	if mem, err := objs.KmemBuf.Memory(); err == nil {
		k.mem = mem
	}
	return k, nil
}

// Read fills b with the kernel memory at addr, in chunks. Memory that is
// not mapped is an error wrapping syscall.EFAULT.
func (k *KernelMemory) Read(addr uint64, b []byte) error {
	for off := 0; off < len(b); off += KernelMemoryChunk {
		n := min(len(b)-off, KernelMemoryChunk)
		a := addr + uint64(off)
		if _, err := k.prog.Run(&ebpf.RunOptions{Context: []uint64{a, uint64(n)}}); err != nil {
			if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, syscall.EINVAL) {
				return fmt.Errorf("run the kernel-memory reader (BPF_PROG_TEST_RUN of raw_tp needs Linux 5.10): %w", err)
			}
			return fmt.Errorf("run the kernel-memory reader: %w", err)
		}
		if k.mem != nil {
			var e [8]byte
			if _, err := k.mem.ReadAt(e[:], 0); err != nil {
				return fmt.Errorf("read the kernel-memory buffer: %w", err)
			}
			if rc := int64(binary.LittleEndian.Uint64(e[:])); rc != 0 {
				return fmt.Errorf("read %d bytes at 0x%x: %w", n, a, syscall.Errno(-rc))
			}
			if _, err := k.mem.ReadAt(b[off:off+n], 8); err != nil {
				return fmt.Errorf("read the kernel-memory buffer: %w", err)
			}
			continue
		}
		if err := k.buf.Lookup(uint32(0), &k.val); err != nil {
			return fmt.Errorf("read the kernel-memory buffer: %w", err)
		}
		if k.val.Err != 0 {
			return fmt.Errorf("read %d bytes at 0x%x: %w", n, a, syscall.Errno(-k.val.Err))
		}
		copy(b[off:off+n], k.val.Data[:n])
	}
	return nil
}

// Close unloads the reader.
func (k *KernelMemory) Close() error {
	k.prog.Close()
	return k.buf.Close()
}
