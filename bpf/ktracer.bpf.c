//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * ktracer's kernel side: module loading, initcalls and module freeing.
 *
 * Each hook has program variants, one per attach method (raw tracepoint or
 * fentry/fexit first, kprobe/kretprobe as fallback); the tracer loads and
 * attaches the first variant the running kernel accepts. All variants of a
 * hook share one body, so the records do not depend on the method.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "ktracer.h"

char LICENSE[] SEC("license") = "GPL";

/* 4 MiB: a module's whole symbol table (a few thousand records of 184 bytes
 * for the largest modules) fits while user space is slow to wake. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct initcall_start_val {
	__u64 ts;
	__u64 func;
};

/* tid -> the running initcall. LRU: an init that oopses never finishes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct initcall_start_val);
} initcall_starts SEC(".maps");

/* tid -> struct module being initialized by that task. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} loading SEC(".maps");

/* Force bpf2go to emit Go types for the records and enums. */
const struct event_header *unused_event_header __attribute__((unused));
const struct module_load_event *unused_module_load_event __attribute__((unused));
const struct module_symbol_event *unused_module_symbol_event __attribute__((unused));
const struct initcall_event *unused_initcall_event __attribute__((unused));
const struct module_done_event *unused_module_done_event __attribute__((unused));
const struct module_free_event *unused_module_free_event __attribute__((unused));
const struct init_pointer_event *unused_init_pointer_event __attribute__((unused));
const struct exec_fault_event *unused_exec_fault_event __attribute__((unused));
const enum event_type *unused_event_type __attribute__((unused));
const enum hook_method *unused_hook_method __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));

/* struct module before 6.4 kept init and core memory in two layouts. */
struct module_layout___pre64 {
	void *base;
	unsigned int size;
	unsigned int text_size;
	unsigned int ro_size;
	unsigned int ro_after_init_size;
} __attribute__((preserve_access_index));

struct module___pre64 {
	struct module_layout___pre64 core_layout;
	struct module_layout___pre64 init_layout;
} __attribute__((preserve_access_index));

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		__sync_fetch_and_add(c, 1);
}

static __always_inline void fill_header(struct event_header *h, __u16 type, __u16 size)
{
	__u64 id = bpf_get_current_pid_tgid();

	h->type = type;
	h->size = size;
	h->cpu = bpf_get_smp_processor_id();
	h->ts_ns = bpf_ktime_get_ns();
	h->pid = id >> 32;
	h->tid = (__u32)id;
}

/* Reserve a record of a fixed type; a full ring buffer is counted, never silent. */
#define reserve_event(TYPE, EVTYPE)                                              \
	({                                                                       \
		TYPE *__e = bpf_ringbuf_reserve(&events, sizeof(TYPE), 0);       \
		if (__e)                                                         \
			fill_header(&__e->hdr, EVTYPE, sizeof(TYPE));            \
		else                                                             \
			count(COUNTER_RINGBUF_FULL);                             \
		__e;                                                             \
	})

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

/* ---- module load: layout, symbols --------------------------------------- */

static __always_inline void read_layout(struct module *mod, struct module_load_event *e)
{
	struct module___pre64 *old = (void *)mod;

	if (bpf_core_field_exists(old->init_layout)) {
		__u64 base = (__u64)BPF_CORE_READ(old, core_layout.base);
		__u32 size = BPF_CORE_READ(old, core_layout.size);
		__u32 text = BPF_CORE_READ(old, core_layout.text_size);

		e->text.base = base;
		e->text.size = text;
		e->init_text.base = (__u64)BPF_CORE_READ(old, init_layout.base);
		e->init_text.size = BPF_CORE_READ(old, init_layout.text_size);
		/* rodata, ro_after_init and data follow text in one mapping */
		e->data[0].base = base + text;
		e->data[0].size = size > text ? size - text : 0;
	} else {
		e->text.base = (__u64)BPF_CORE_READ(mod, mem[MOD_TEXT].base);
		e->text.size = BPF_CORE_READ(mod, mem[MOD_TEXT].size);
		e->init_text.base = (__u64)BPF_CORE_READ(mod, mem[MOD_INIT_TEXT].base);
		e->init_text.size = BPF_CORE_READ(mod, mem[MOD_INIT_TEXT].size);
		e->data[0].base = (__u64)BPF_CORE_READ(mod, mem[MOD_DATA].base);
		e->data[0].size = BPF_CORE_READ(mod, mem[MOD_DATA].size);
		e->data[1].base = (__u64)BPF_CORE_READ(mod, mem[MOD_RODATA].base);
		e->data[1].size = BPF_CORE_READ(mod, mem[MOD_RODATA].size);
		e->data[2].base = (__u64)BPF_CORE_READ(mod, mem[MOD_RO_AFTER_INIT].base);
		e->data[2].size = BPF_CORE_READ(mod, mem[MOD_RO_AFTER_INIT].size);
	}
}

struct symbol_walk {
	__u64 module;
	Elf64_Sym *symtab;
	char *strtab;
	char *typetab;
};

static long emit_symbol(__u32 i, void *data)
{
	struct symbol_walk *w = data;
	struct module_symbol_event *e;
	Elf64_Sym sym;

	if (bpf_probe_read_kernel(&sym, sizeof(sym), &w->symtab[i]))
		return 1;
	if (sym.st_shndx == 0 /* SHN_UNDEF */ || sym.st_value == 0)
		return 0;
	e = reserve_event(struct module_symbol_event, EVENT_MODULE_SYMBOL);
	if (!e)
		return 0;
	e->module = w->module;
	e->value = sym.st_value;
	e->size = sym.st_size;
	e->type = 0;
	if (w->typetab)
		bpf_probe_read_kernel(&e->type, 1, w->typetab + i);
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	if (bpf_probe_read_kernel_str(e->name, sizeof(e->name), w->strtab + sym.st_name) < 0)
		e->name[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/*
 * Init symbols vanish from kallsyms once init memory is freed, so the whole
 * init-time symbol table is sent now, while mod->kallsyms still points at it.
 */
static __always_inline int on_module_load(struct module *mod)
{
	struct module_load_event *e;
	struct mod_kallsyms *ks;
	struct symbol_walk w = {};
	__u32 tid = current_tid();
	__u64 m = (__u64)mod;
	__u32 n = 0;

	bpf_map_update_elem(&loading, &tid, &m, BPF_ANY);

	ks = BPF_CORE_READ(mod, kallsyms);
	if (ks) {
		n = BPF_CORE_READ(ks, num_symtab);
		w.module = m;
		w.symtab = BPF_CORE_READ(ks, symtab);
		w.strtab = BPF_CORE_READ(ks, strtab);
		if (bpf_core_field_exists(ks->typetab))
			w.typetab = BPF_CORE_READ(ks, typetab);
	}

	e = reserve_event(struct module_load_event, EVENT_MODULE_LOAD);
	if (!e)
		return 0;
	__builtin_memset(&e->text, 0, sizeof(*e) - offsetof(struct module_load_event, text));
	e->module = m;
	e->init_fn = (__u64)BPF_CORE_READ(mod, init);
	read_layout(mod, e);
	e->this_module_size = bpf_core_type_size(struct module);
	e->num_symbols = n;
	BPF_CORE_READ_STR_INTO(&e->name, mod, name);
	bpf_ringbuf_submit(e, 0);

	if (w.symtab && w.strtab && n)
		bpf_loop(n, emit_symbol, &w, 0);
	return 0;
}

SEC("raw_tp/module_load")
int BPF_PROG(module_load_raw_tp, struct module *mod)
{
	return on_module_load(mod);
}

SEC("kprobe/do_init_module")
int BPF_KPROBE(module_load_kprobe, struct module *mod)
{
	return on_module_load(mod);
}

/* ---- initcalls ------------------------------------------------------------ */

static __always_inline int on_initcall_start(__u64 func)
{
	struct initcall_start_val v = { .ts = bpf_ktime_get_ns(), .func = func };
	struct initcall_event *e;
	__u32 tid = current_tid();

	bpf_map_update_elem(&initcall_starts, &tid, &v, BPF_ANY);
	e = reserve_event(struct initcall_event, EVENT_INITCALL_START);
	if (!e)
		return 0;
	e->func = func;
	e->duration_ns = 0;
	e->ret = 0;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* func is 0 when the hook cannot see it (kretprobe): taken from the start. */
static __always_inline int on_initcall_finish(__u64 func, int ret)
{
	struct initcall_start_val *start;
	struct initcall_event *e;
	__u32 tid = current_tid();
	__u64 now = bpf_ktime_get_ns();
	__u64 duration = 0;

	start = bpf_map_lookup_elem(&initcall_starts, &tid);
	if (start) {
		duration = now - start->ts;
		if (!func)
			func = start->func;
		bpf_map_delete_elem(&initcall_starts, &tid);
	}
	e = reserve_event(struct initcall_event, EVENT_INITCALL_FINISH);
	if (!e)
		return 0;
	e->func = func;
	e->duration_ns = duration;
	e->ret = ret;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("raw_tp/initcall_start")
int BPF_PROG(initcall_start_raw_tp, void *func)
{
	return on_initcall_start((__u64)func);
}

SEC("raw_tp/initcall_finish")
int BPF_PROG(initcall_finish_raw_tp, void *func, int ret)
{
	return on_initcall_finish((__u64)func, ret);
}

SEC("kprobe/do_one_initcall")
int BPF_KPROBE(initcall_start_kprobe, void *func)
{
	return on_initcall_start((__u64)func);
}

SEC("kretprobe/do_one_initcall")
int BPF_KRETPROBE(initcall_finish_kretprobe, int ret)
{
	return on_initcall_finish(0, ret);
}

/* ---- module init done, module free ----------------------------------------- */

static __always_inline int on_module_done(struct module *mod, int ret)
{
	struct module_done_event *e;
	__u32 tid = current_tid();

	if (!mod) {
		__u64 *m = bpf_map_lookup_elem(&loading, &tid);

		if (m)
			mod = (struct module *)*m;
	}
	bpf_map_delete_elem(&loading, &tid);
	e = reserve_event(struct module_done_event, EVENT_MODULE_INIT_DONE);
	if (!e)
		return 0;
	e->module = (__u64)mod;
	e->ret = ret;
	e->pad = 0;
	__builtin_memset(e->name, 0, sizeof(e->name));
	if (mod)
		BPF_CORE_READ_STR_INTO(&e->name, mod, name);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fexit/do_init_module")
int BPF_PROG(module_done_fexit, struct module *mod, int ret)
{
	return on_module_done(mod, ret);
}

SEC("kretprobe/do_init_module")
int BPF_KRETPROBE(module_done_kretprobe, int ret)
{
	return on_module_done(NULL, ret);
}

static __always_inline int on_module_free(struct module *mod)
{
	struct module_free_event *e;

	e = reserve_event(struct module_free_event, EVENT_MODULE_FREE);
	if (!e)
		return 0;
	e->module = (__u64)mod;
	BPF_CORE_READ_STR_INTO(&e->name, mod, name);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("raw_tp/module_free")
int BPF_PROG(module_free_raw_tp, struct module *mod)
{
	return on_module_free(mod);
}

SEC("kprobe/free_module")
int BPF_KPROBE(module_free_kprobe, struct module *mod)
{
	return on_module_free(mod);
}
