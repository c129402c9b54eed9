//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * ktracer's kernel-memory reader for the startup audit: one raw tracepoint
 * program that is never attached, only run on demand with
 * BPF_PROG_TEST_RUN (raw_tp test runs exist since 5.10). Its context holds
 * an address and a length; it copies that much kernel memory into the one
 * value of kmem_buf, which user space then reads. This works with CAP_BPF
 * and CAP_PERFMON and inside containers, where /proc/kcore (CAP_SYS_RAWIO,
 * and masked) does not. Kept apart from ktracer.bpf.c: loaded only for the
 * audit, closed after it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define KMEM_CHUNK (64 << 10)

struct kmem_chunk {
	__s64 err; /* bpf_probe_read_kernel's result: 0 or -EFAULT */
	__u8 data[KMEM_CHUNK];
};

/* Mmapable (5.5+): user space reads the bytes in place instead of copying
 * the whole 64 KiB value out with every lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kmem_chunk);
} kmem_buf SEC(".maps");

/* ctx: args[0] = kernel address, args[1] = length (at most KMEM_CHUNK). */
SEC("raw_tp")
int kmem_read(__u64 *ctx)
{
	__u32 zero = 0;
	struct kmem_chunk *c = bpf_map_lookup_elem(&kmem_buf, &zero);
	__u64 addr = ctx[0];
	__u64 len = ctx[1];

	if (!c)
		return 1;
	if (len > KMEM_CHUNK || len == 0) {
		c->err = -22; /* EINVAL */
		return 1;
	}
	c->err = bpf_probe_read_kernel(c->data, len, (const void *)addr);
	return 0;
}
