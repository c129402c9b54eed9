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

/* Kernel addresses user space looked up in kallsyms: enum addr_param. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PARAM_MAX);
	__type(key, __u32);
	__type(value, __u64);
} params SEC(".maps");

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
const struct oops_event *unused_oops_event __attribute__((unused));
const struct warning_event *unused_warning_event __attribute__((unused));
const struct bad_page_event *unused_bad_page_event __attribute__((unused));
const struct panic_event *unused_panic_event __attribute__((unused));
const struct crash_event *unused_crash_event __attribute__((unused));
const enum oops_kind *unused_oops_kind __attribute__((unused));
const enum addr_param *unused_addr_param __attribute__((unused));
const struct load_failed_event *unused_load_failed_event __attribute__((unused));
const enum load_fact *unused_load_fact __attribute__((unused));

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

/* ---- load-failed: per-task state (the hooks are at the end) --------------- */

/* tid -> what the reason hooks saw during this task's load_module. Created
 * by the first hook that fires, sent and deleted at load_module's return.
 * The hooks copy names and strings as they fire: by that return the
 * module's ELF copy, which load_info points into, is freed. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct load_failed_event);
} load_states SEC(".maps");

/* One zeroed value to create load_states entries from: too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct load_failed_event);
} load_zero SEC(".maps");

static __always_inline struct load_failed_event *load_state(void)
{
	struct load_failed_event *s, *zero;
	__u32 tid = current_tid(), k = 0;

	s = bpf_map_lookup_elem(&load_states, &tid);
	if (s)
		return s;
	zero = bpf_map_lookup_elem(&load_zero, &k);
	if (!zero)
		return NULL;
	bpf_map_update_elem(&load_states, &tid, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&load_states, &tid);
}

/* The module reached its init: whatever load_module returns now is init's
 * business (init-failed), not a load failure. */
static __always_inline void load_mark_init(void)
{
	struct load_failed_event *s = load_state();

	if (s)
		s->facts |= LOAD_INIT_REACHED;
}

/* ---- module load: layout, symbols --------------------------------------- */

static __always_inline void read_layout(struct module *mod, struct module_ranges *e)
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

static __always_inline long emit_symbol_inline(__u32 i, struct symbol_walk *w)
{
	struct module_symbol_event *e;
	Elf64_Sym sym;

	if (bpf_probe_read_kernel(&sym, sizeof(sym), &w->symtab[i]))
		return 1;
	/* Undefined symbols have no address; section and file symbols have no
	 * name and would shadow the function at the same address. */
	if (sym.st_shndx == 0 /* SHN_UNDEF */ || sym.st_value == 0 || sym.st_name == 0)
		return 0;
	if ((sym.st_info & 0xf) == 3 /* STT_SECTION */ || (sym.st_info & 0xf) == 4 /* STT_FILE */)
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
	/* Default (adaptive) wake-up: the kernel wakes the reader only when it
	 * had caught up, so a burst of symbols costs one wake-up. NO_WAKEUP
	 * here starved the reader: the next record then saw it behind and did
	 * not wake it either, and records were lost (TestStorm). */
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The bpf_loop callback; the variant without bpf_loop inlines the body, as
 * 5.10's verifier fails (EFAULT) on the subprogram call in a loop. */
static long emit_symbol(__u32 i, void *data)
{
	return emit_symbol_inline(i, data);
}

/*
 * Init symbols vanish from kallsyms once init memory is freed, so the whole
 * init-time symbol table is sent now, while mod->kallsyms still points at it.
 */
/* Symbols a module_load variant without bpf_loop can send. */
#define NOLOOP_MAX_SYMBOLS 256

static __always_inline int on_module_load(struct module *mod, bool use_bpf_loop)
{
	struct module_load_event *e;
	struct mod_kallsyms *ks;
	struct symbol_walk w = {};
	__u32 tid = current_tid();
	__u64 m = (__u64)mod;
	__u32 n = 0;

	bpf_map_update_elem(&loading, &tid, &m, BPF_ANY);
	load_mark_init();

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
	__builtin_memset(&e->ranges, 0, sizeof(*e) - offsetof(struct module_load_event, ranges));
	e->module = m;
	e->init_fn = (__u64)BPF_CORE_READ(mod, init);
	read_layout(mod, &e->ranges);
	e->this_module_size = bpf_core_type_size(struct module);
	e->num_symbols = n;
	BPF_CORE_READ_STR_INTO(&e->name, mod, name);
	bpf_ringbuf_submit(e, 0);

	if (w.symtab && w.strtab && n) {
		if (use_bpf_loop) {
			bpf_loop(n, emit_symbol, &w, 0);
		} else {
			/* Kernels before 5.17 have no bpf_loop, and 5.10's verifier
			 * fails (EFAULT) on a bounded loop here: fully unrolled, so
			 * there is no back-edge for it to track. */
			__u32 i;

#pragma unroll
			for (i = 0; i < NOLOOP_MAX_SYMBOLS; i++)
				if (i < n)
					emit_symbol_inline(i, &w);
			if (n > NOLOOP_MAX_SYMBOLS)
				count(COUNTER_SYMBOLS_TRUNCATED);
		}
	}
	return 0;
}

SEC("raw_tp/module_load")
int BPF_PROG(module_load_raw_tp, struct module *mod)
{
	return on_module_load(mod, true);
}

SEC("kprobe/do_init_module")
int BPF_KPROBE(module_load_kprobe, struct module *mod)
{
	return on_module_load(mod, true);
}

/* Before 5.17: no bpf_loop, at most NOLOOP_MAX_SYMBOLS symbols. */
SEC("raw_tp/module_load")
int BPF_PROG(module_load_raw_tp_noloop, struct module *mod)
{
	return on_module_load(mod, false);
}

/* ---- dangling init pointers ---------------------------------------------- */

/*
 * Seed incident 2: a pointer to an __init function stored in persistent
 * data is a time bomb once init memory is freed. Right after a module's
 * init returns, and before do_init_module frees init memory, every word of
 * the module's persistent data is checked for a value inside its own init
 * text. User space then names the data symbol and the init function.
 */
#define SCAN_CHUNK 4096                /* bytes read at once */
#define SCAN_WORDS (SCAN_CHUNK / 8)
#define SCAN_MAX_WORDS (2 << 20)       /* 16 MiB of data per range */
#define SCAN_MAX_HITS 64

/*
 * The scan state lives in a per-CPU map value, not on the stack: values
 * loaded from a map are unknown to the verifier, so the callback's states
 * converge at once instead of being simulated hit by hit.
 */
struct scan_state {
	__u64 module;
	__u64 this_size; /* struct module itself holds mod->init: skipped */
	__u64 init_base;
	__u64 init_size;
	__u64 base; /* the data range being scanned */
	__u64 size;
	__u64 hits;
	__u64 unreadable; /* the current chunk could not be read */
	/* Twice the chunk so a masked length is provably within the buffer. */
	__u64 words[2 * SCAN_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scan_state);
} scan_bufs SEC(".maps");

/* One word per iteration, so the verifier sees no inner loop; the chunk
 * buffer is refilled every SCAN_WORDS words. */
static long scan_word(__u32 idx, void *unused)
{
	struct init_pointer_event *e;
	struct scan_state *c;
	__u32 zero = 0, slot = idx & (SCAN_WORDS - 1);
	__u64 off = (__u64)idx * 8, v, where;

	c = bpf_map_lookup_elem(&scan_bufs, &zero);
	if (!c || off + 8 > c->size)
		return 1;
	if (slot == 0) {
		__u64 len = c->size - off;

		if (len > SCAN_CHUNK)
			len = SCAN_CHUNK;
		c->unreadable = bpf_probe_read_kernel(c->words, len & (2 * SCAN_CHUNK - 1),
						      (void *)(c->base + off)) != 0;
	}
	if (c->unreadable)
		return 0;
	v = c->words[slot];
	if (v - c->init_base >= c->init_size)
		return 0;
	where = c->base + off;
	if (where - c->module < c->this_size)
		return 0;
	e = reserve_event(struct init_pointer_event, EVENT_INIT_POINTER);
	if (!e)
		return 1;
	e->module = c->module;
	e->where = where;
	e->value = v;
	bpf_ringbuf_submit(e, 0);
	c->hits++;
	return c->hits >= SCAN_MAX_HITS;
}

static __always_inline void scan_module(struct module *mod)
{
	struct module_ranges r = {};
	struct scan_state *c;
	__u32 zero = 0;
	__u64 words;
	int i;

	c = bpf_map_lookup_elem(&scan_bufs, &zero);
	if (!c)
		return;
	read_layout(mod, &r);
	if (!r.init_text.base || !r.init_text.size)
		return;
	c->module = (__u64)mod;
	c->this_size = bpf_core_type_size(struct module);
	c->init_base = r.init_text.base;
	c->init_size = r.init_text.size;
	c->hits = 0;
	for (i = 0; i < KT_MAX_DATA_RANGES; i++) {
		if (!r.data[i].base || !r.data[i].size)
			continue;
		c->base = r.data[i].base;
		c->size = r.data[i].size;
		c->unreadable = 0;
		words = c->size / 8;
		if (words > SCAN_MAX_WORDS) {
			words = SCAN_MAX_WORDS;
			count(COUNTER_SCAN_TRUNCATED);
		}
		bpf_loop(words, scan_word, NULL, 0);
		if (c->hits >= SCAN_MAX_HITS)
			break;
	}
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

/* func is 0 when the hook cannot see it (kretprobe): taken from the start.
 * scan is false for the variant that runs without bpf_loop. */
static __always_inline int on_initcall_finish(__u64 func, int ret, bool scan)
{
	struct initcall_start_val *start;
	struct initcall_event *e;
	__u32 tid = current_tid();
	__u64 now = bpf_ktime_get_ns();
	__u64 duration = 0;

	__u64 *loading_mod;

	start = bpf_map_lookup_elem(&initcall_starts, &tid);
	if (start) {
		duration = now - start->ts;
		if (!func)
			func = start->func;
		bpf_map_delete_elem(&initcall_starts, &tid);
	}
	/* A module's init succeeded: its init memory is about to be freed. */
	loading_mod = scan ? bpf_map_lookup_elem(&loading, &tid) : NULL;
	if (loading_mod && ret >= 0) {
		struct module *mod = (struct module *)*loading_mod;

		if ((__u64)BPF_CORE_READ(mod, init) == func)
			scan_module(mod);
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
	return on_initcall_finish((__u64)func, ret, true);
}

/* Before 5.17: no bpf_loop, so no scan for dangling init pointers. */
SEC("raw_tp/initcall_finish")
int BPF_PROG(initcall_finish_raw_tp_noscan, void *func, int ret)
{
	return on_initcall_finish((__u64)func, ret, false);
}

SEC("kprobe/do_one_initcall")
int BPF_KPROBE(initcall_start_kprobe, void *func)
{
	return on_initcall_start((__u64)func);
}

SEC("kretprobe/do_one_initcall")
int BPF_KRETPROBE(initcall_finish_kretprobe, int ret)
{
	return on_initcall_finish(0, ret, true);
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

/* ---- calls into freed init text ------------------------------------------- */

#define X86_PF_INSTR (1 << 4)

/* The caller is the return address the call pushed: the word at sp. */
static __always_inline int on_exec_fault(__u64 address, struct pt_regs *regs, __u64 error_code)
{
	struct exec_fault_event *e;
	__u64 sp = BPF_CORE_READ(regs, sp);

	e = reserve_event(struct exec_fault_event, EVENT_EXEC_FAULT);
	if (!e)
		return 0;
	e->address = address;
	e->ip = BPF_CORE_READ(regs, ip);
	e->error_code = error_code;
	e->caller = 0;
	bpf_probe_read_kernel(&e->caller, sizeof(e->caller), (void *)sp);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Every kernel-mode page fault passes here; only instruction fetches matter. */
SEC("raw_tp/page_fault_kernel")
int BPF_PROG(exec_fault_raw_tp, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	if (!(error_code & X86_PF_INSTR))
		return 0;
	return on_exec_fault(address, regs, error_code);
}

/* Fallback without the exceptions tracepoints: the oops a kernel-mode page
 * fault ends in (__die and oops_begin are on the kprobe blacklist). */
SEC("kprobe/page_fault_oops")
int BPF_KPROBE(exec_fault_oops_kprobe, struct pt_regs *regs, unsigned long error_code, unsigned long address)
{
	if (!(error_code & X86_PF_INSTR))
		return 0;
	return on_exec_fault(address, regs, error_code);
}

/* ---- panic path: oops, WARN, bad page, panic, crash kexec ------------------ */

static __always_inline __u64 param(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&params, &which);

	return v ? *v : 0;
}

static __always_inline __u64 stack_word(struct pt_regs *regs)
{
	__u64 sp = BPF_CORE_READ(regs, sp), w = 0;

	bpf_probe_read_kernel(&w, sizeof(w), (void *)sp);
	return w;
}

static __always_inline int on_oops(__u32 kind, const char *what, struct pt_regs *regs, __u64 err, __u64 address)
{
	struct oops_event *e = reserve_event(struct oops_event, EVENT_OOPS);

	if (!e)
		return 0;
	e->ip = regs ? BPF_CORE_READ(regs, ip) : 0;
	e->address = address;
	e->error_code = err;
	e->caller = regs ? stack_word(regs) : 0;
	e->kind = kind;
	e->pad = 0;
	e->what[0] = 0;
	if (what)
		bpf_probe_read_kernel_str(e->what, sizeof(e->what), what);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fentry/page_fault_oops")
int BPF_PROG(oops_fault_fentry, struct pt_regs *regs, unsigned long error_code, unsigned long address)
{
	return on_oops(OOPS_PAGE_FAULT, NULL, regs, error_code, address);
}

SEC("kprobe/page_fault_oops")
int BPF_KPROBE(oops_fault_kprobe, struct pt_regs *regs, unsigned long error_code, unsigned long address)
{
	return on_oops(OOPS_PAGE_FAULT, NULL, regs, error_code, address);
}

SEC("fentry/die")
int BPF_PROG(oops_trap_fentry, const char *str, struct pt_regs *regs, long err)
{
	return on_oops(OOPS_TRAP, str, regs, err, 0);
}

SEC("kprobe/die")
int BPF_KPROBE(oops_trap_kprobe, const char *str, struct pt_regs *regs, long err)
{
	return on_oops(OOPS_TRAP, str, regs, err, 0);
}

SEC("fentry/die_addr")
int BPF_PROG(oops_gp_fentry, const char *str, struct pt_regs *regs, long err, long gp_addr)
{
	return on_oops(OOPS_GP, str, regs, err, gp_addr);
}

SEC("kprobe/die_addr")
int BPF_KPROBE(oops_gp_kprobe, const char *str, struct pt_regs *regs, long err, long gp_addr)
{
	return on_oops(OOPS_GP, str, regs, err, gp_addr);
}

static __always_inline int on_warn(const char *file, int line, void *caller, unsigned int taint)
{
	struct warning_event *e = reserve_event(struct warning_event, EVENT_WARNING);

	if (!e)
		return 0;
	e->caller = (__u64)caller;
	e->line = line;
	e->taint = taint;
	e->file[0] = 0;
	if (file)
		bpf_probe_read_kernel_str(e->file, sizeof(e->file), file);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fentry/__warn")
int BPF_PROG(warning_fentry, const char *file, int line, void *caller, unsigned int taint)
{
	return on_warn(file, line, caller, taint);
}

SEC("kprobe/__warn")
int BPF_KPROBE(warning_kprobe, const char *file, int line, void *caller, unsigned int taint)
{
	return on_warn(file, line, caller, taint);
}

/* The caller is the return address at sp on entry for the kprobe; fentry
 * (reachable without CAP_SYS_ADMIN under perf_event_paranoid=3) cannot read
 * it, and leaves it 0: the decoder finds the culprit in the stack. */
static __always_inline int on_bad_page(void *ctx, __u64 page, const char *reason, __u64 sp)
{
	__u64 vmemmap_addr = param(PARAM_VMEMMAP_BASE), vmemmap = 0, pfn = ~0ULL;
	struct bad_page_event *e;

	/* Everything but the record first: 6.1's verifier loses track of a
	 * ring-buffer pointer checked twice around other calls. */
	if (vmemmap_addr && !bpf_probe_read_kernel(&vmemmap, sizeof(vmemmap), (void *)vmemmap_addr) && vmemmap)
		pfn = ((__u64)page - vmemmap) / bpf_core_type_size(struct page);
	e = reserve_event(struct bad_page_event, EVENT_BAD_PAGE);
	if (!e)
		return 0;
	e->page = (__u64)page;
	e->pfn = pfn;
	/* page->flags is an unsigned long, or a struct wrapping one (6.17+), so
	 * CO-RE cannot relocate it across both; it has always been struct
	 * page's first word. */
	e->flags = 0;
	bpf_probe_read_kernel(&e->flags, sizeof(e->flags), (void *)page);
	e->caller = 0;
	if (sp)
		bpf_probe_read_kernel(&e->caller, sizeof(e->caller), (void *)sp);
	__builtin_memset(e->stack, 0, sizeof(e->stack));
	bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	e->reason[0] = 0;
	if (reason)
		bpf_probe_read_kernel_str(e->reason, sizeof(e->reason), reason);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fentry/bad_page")
int BPF_PROG(bad_page_fentry, struct page *page, const char *reason)
{
	__u64 addr = 0;

	/* The argument as a plain number: fentry types it as a struct page
	 * pointer, and the verifier refuses the pfn arithmetic on one. */
	bpf_probe_read_kernel(&addr, sizeof(addr), &ctx[0]);
	return on_bad_page(ctx, addr, reason, 0);
}

SEC("kprobe/bad_page")
int BPF_KPROBE(bad_page_kprobe, struct page *page, const char *reason)
{
	return on_bad_page(ctx, (__u64)page, reason, PT_REGS_SP(ctx));
}

/* kprobe only: panic() is variadic, which fentry cannot attach to. The first
 * variadic arguments are in the next argument registers. */
SEC("kprobe/panic")
int BPF_KPROBE(panic_kprobe, const char *fmt)
{
	struct panic_event *e = reserve_event(struct panic_event, EVENT_PANIC);

	if (!e)
		return 0;
	e->args[0] = PT_REGS_PARM2(ctx);
	e->args[1] = PT_REGS_PARM3(ctx);
	e->args[2] = PT_REGS_PARM4(ctx);
	e->args[3] = PT_REGS_PARM5(ctx);
	e->args[4] = BPF_CORE_READ(ctx, r9); /* the sixth argument register */
	e->fmt[0] = 0;
	bpf_probe_read_kernel_str(e->fmt, sizeof(e->fmt), fmt);
	/* Harmless when the argument is not a string: the read just fails. */
	if (bpf_probe_read_kernel_str(e->str[0], sizeof(e->str[0]), (void *)e->args[0]) < 0)
		e->str[0][0] = 0;
	if (bpf_probe_read_kernel_str(e->str[1], sizeof(e->str[1]), (void *)e->args[1]) < 0)
		e->str[1][0] = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* panic() is variadic, which fentry cannot attach to. From 6.11 it hands
 * its va_list to vpanic(fmt, args), before it stops the other CPUs: fentry
 * there reads the same format and first five arguments as the kprobe, from
 * the va_list (x86-64 ABI: the first six integer arguments are saved in
 * reg_save_area, gp_offset is the next one's offset, the rest are at
 * overflow_arg_area). */
struct kt_va_list {
	__u32 gp_offset;
	__u32 fp_offset;
	__u64 overflow_arg_area;
	__u64 reg_save_area;
};

SEC("fentry/vpanic")
int BPF_PROG(panic_vpanic_fentry, const char *fmt, void *args)
{
	struct kt_va_list va = {};
	struct panic_event *e;
	__u64 gp, over;
	int i;

	if (bpf_probe_read_kernel(&va, sizeof(va), args))
		return 0;
	e = reserve_event(struct panic_event, EVENT_PANIC);
	if (!e)
		return 0;
	gp = va.gp_offset;
	over = va.overflow_arg_area;
	for (i = 0; i < 5; i++) {
		__u64 *slot = &e->args[i];

		*slot = 0;
		if (gp < 48) {
			bpf_probe_read_kernel(slot, sizeof(*slot), (void *)(va.reg_save_area + gp));
			gp += 8;
		} else {
			bpf_probe_read_kernel(slot, sizeof(*slot), (void *)over);
			over += 8;
		}
	}
	e->fmt[0] = 0;
	bpf_probe_read_kernel_str(e->fmt, sizeof(e->fmt), fmt);
	if (bpf_probe_read_kernel_str(e->str[0], sizeof(e->str[0]), (void *)e->args[0]) < 0)
		e->str[0][0] = 0;
	if (bpf_probe_read_kernel_str(e->str[1], sizeof(e->str[1]), (void *)e->args[1]) < 0)
		e->str[1][0] = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* Before 6.11 there is no vpanic: fentry on the panic's log dump,
 * kmsg_dump(KMSG_DUMP_PANIC), which has no message (the format is left
 * empty). It comes after the other CPUs are stopped, and after the hand-over
 * to a loaded crash kernel, so the record is rarely read live; the
 * crash_kexec hook reports the hand-over. Oopses also dump the log: only the
 * panic reason counts. */
SEC("fentry/kmsg_dump")
int BPF_PROG(panic_dump_fentry, enum kmsg_dump_reason reason)
{
	struct panic_event *e;

	if (reason != bpf_core_enum_value(enum kmsg_dump_reason, KMSG_DUMP_PANIC))
		return 0;
	e = reserve_event(struct panic_event, EVENT_PANIC);
	if (!e)
		return 0;
	__builtin_memset(e->args, 0, sizeof(e->args));
	e->fmt[0] = 0;
	e->str[0][0] = 0;
	e->str[1][0] = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

static __always_inline int on_crash(__u16 type)
{
	struct crash_event *e;
	__u64 img_addr = param(PARAM_KEXEC_CRASH_IMAGE), img = 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_RINGBUF_FULL);
		return 0;
	}
	fill_header(&e->hdr, type, sizeof(*e));
	e->crash_kernel_loaded = 2;
	if (img_addr && !bpf_probe_read_kernel(&img, sizeof(img), (void *)img_addr))
		e->crash_kernel_loaded = img != 0;
	e->pad = 0;
	/* Other CPUs stop soon after: wake the reader now. */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

SEC("fentry/__crash_kexec")
int BPF_PROG(crash_kexec_fentry)
{
	return on_crash(EVENT_CRASH_KEXEC);
}

SEC("fentry/emergency_restart")
int BPF_PROG(emergency_restart_fentry)
{
	return on_crash(EVENT_EMERGENCY_RESTART);
}

SEC("kprobe/__crash_kexec")
int BPF_KPROBE(crash_kexec_kprobe)
{
	return on_crash(EVENT_CRASH_KEXEC);
}

SEC("kprobe/emergency_restart")
int BPF_KPROBE(emergency_restart_kprobe)
{
	return on_crash(EVENT_EMERGENCY_RESTART);
}

/* ---- load-failed: why load_module refused a module ------------------------ */

/*
 * A load that fails before init (unknown symbol, symbol version mismatch,
 * bad vermagic, missing signature, already loaded, bad ELF) leaves nothing
 * but modprobe's errno. The hooks below record what the kernel's own checks
 * saw, per task, while load_module runs; its return sends the record. Which
 * reason applies is decided in user space from these facts and the errno.
 * The functions that reject (simplify_symbols, check_modinfo and, before
 * 6.1, module_sig_check) are inlined, so the hooks are on what they call:
 * fexit, or a kretprobe paired with a kprobe that keeps the arguments.
 */

#define KT_EBUSY 16
#define KT_MAX_ERRNO 4095
#define KT_MODVERSION_NAME_LEN 56 /* struct modversion_info: crc, name[56] */
#define KT_MAX_VERSIONS 1024      /* __versions entries searched for a CRC */

/* The fields of struct load_info used here; it has always had them. */
struct load_info___kt {
	const char *name;
	struct elf64_shdr *sechdrs;
	struct {
		unsigned int vers;
	} index;
} __attribute__((preserve_access_index));

/* The module's name, once its ELF has been parsed (info->name is set). */
static __always_inline void load_name(struct load_failed_event *s, struct load_info___kt *info)
{
	const char *name;

	if (s->name[0] || !info)
		return;
	name = BPF_CORE_READ(info, name);
	if (!name || bpf_probe_read_kernel_str(s->name, sizeof(s->name), name) < 0)
		s->name[0] = 0;
}

/* Only the first symbol problem is kept: the kernel reports every one, and
 * the first is the one to fix first. */
#define LOAD_SYMBOL_FACTS (LOAD_UNKNOWN_SYMBOL | LOAD_SYMBOL_VERSION | LOAD_SYMBOL_ERROR)

/* The CRC the module was built against: its __versions entry for symbol.
 * Entries are {unsigned long crc; char name[56]}, names NUL-padded, and
 * s->symbol is zero beyond its NUL, so whole words compare. One entry per
 * bpf_loop iteration: 6.1's verifier fails (EFAULT) on the bounded loop. */
struct crc_search {
	__u64 want[KT_MODVERSION_NAME_LEN / 8];
	__u64 base;  /* __versions' address */
	__u64 n;     /* its entries */
	__u64 crc;
	__u64 found;
};

static long crc_entry(__u32 i, void *data)
{
	struct crc_search *c = data;
	__u64 e[1 + KT_MODVERSION_NAME_LEN / 8];
	int w;

	if (i >= c->n || bpf_probe_read_kernel(e, sizeof(e), (void *)(c->base + (__u64)i * sizeof(e))))
		return 1;
	for (w = 0; w < KT_MODVERSION_NAME_LEN / 8; w++)
		if (e[1 + w] != c->want[w])
			return 0;
	c->crc = e[0];
	c->found = 1;
	return 1;
}

static __always_inline void load_module_crc(struct load_failed_event *s, struct load_info___kt *info)
{
	struct elf64_shdr *sechdrs = BPF_CORE_READ(info, sechdrs);
	__u32 vers = BPF_CORE_READ(info, index.vers);
	struct crc_search c = {};
	struct elf64_shdr sh;

	if (!sechdrs || !vers || bpf_probe_read_kernel(&sh, sizeof(sh), sechdrs + vers))
		return;
	c.base = sh.sh_addr;
	c.n = sh.sh_size / (8 + KT_MODVERSION_NAME_LEN);
	__builtin_memcpy(c.want, s->symbol, sizeof(c.want));
	s->facts |= LOAD_CRC_SEARCHED;
	bpf_loop(c.n < KT_MAX_VERSIONS ? c.n : KT_MAX_VERSIONS, crc_entry, &c, 0);
	if (c.found) {
		s->module_crc = (__u32)c.crc;
		s->facts |= LOAD_MODULE_CRC;
	}
}

/* check_version returns 0 when the module's CRC for symname differs from
 * the kernel's (*crc): "disagrees about version of symbol". The kernel's
 * CRC is read when kernel_crc (not by fexit on 5.10, whose verifier refuses
 * an int pointer argument), the module's when module_crc (bpf_loop). */
static __always_inline int on_check_version(struct load_info___kt *info, const char *symname, const __u32 *crc,
					    int ret, bool kernel_crc, bool module_crc)
{
	struct load_failed_event *s = load_state();

	if (!s)
		return 0;
	load_name(s, info);
	if (ret || (s->facts & LOAD_SYMBOL_FACTS))
		return 0;
	s->facts |= LOAD_SYMBOL_VERSION;
	if (bpf_probe_read_kernel_str(s->symbol, sizeof(s->symbol), symname) < 0)
		s->symbol[0] = 0;
	if (kernel_crc && crc && !bpf_probe_read_kernel(&s->kernel_crc, sizeof(s->kernel_crc), crc))
		s->facts |= LOAD_KERNEL_CRC;
	if (module_crc)
		load_module_crc(s, info);
	return 0;
}

/* resolve_symbol returns NULL for a symbol nobody exports, an ERR_PTR for
 * a symbol it may not use (version: see check_version; namespace; -EBUSY
 * while the owner is still loading, which is retried). */
static __always_inline int on_resolve_symbol(struct load_info___kt *info, const char *name, const void *ret)
{
	struct load_failed_event *s;
	long err = (long)ret;

	if (ret && !(err < 0 && err >= -KT_MAX_ERRNO))
		return 0;
	if (err == -KT_EBUSY)
		return 0;
	s = load_state();
	if (!s)
		return 0;
	load_name(s, info);
	if (s->facts & LOAD_SYMBOL_FACTS)
		return 0;
	if (ret) {
		s->facts |= LOAD_SYMBOL_ERROR;
		s->symbol_err = (__s32)err;
	} else {
		s->facts |= LOAD_UNKNOWN_SYMBOL;
	}
	if (bpf_probe_read_kernel_str(s->symbol, sizeof(s->symbol), name) < 0)
		s->symbol[0] = 0;
	return 0;
}

/* same_magic (6.1+; inlined in 5.10) compares the module's vermagic with
 * the kernel's; with modversions only the part after the release. */
static __always_inline int on_same_magic(const char *amagic, const char *bmagic, bool ret)
{
	struct load_failed_event *s;

	if (ret)
		return 0;
	s = load_state();
	if (!s || (s->facts & LOAD_VERMAGIC))
		return 0;
	s->facts |= LOAD_VERMAGIC;
	if (bpf_probe_read_kernel_str(s->vermagic, sizeof(s->vermagic), amagic) < 0)
		s->vermagic[0] = 0;
	if (bpf_probe_read_kernel_str(s->kernel_vermagic, sizeof(s->kernel_vermagic), bmagic) < 0)
		s->kernel_vermagic[0] = 0;
	return 0;
}

/* mod_verify_sig runs only for a module that carries a signature; an
 * unsigned module under module.sig_enforce=1 fails without it (EKEYREJECTED). */
static __always_inline int on_verify_sig(int ret)
{
	struct load_failed_event *s;

	if (!ret)
		return 0;
	s = load_state();
	if (!s)
		return 0;
	s->facts |= LOAD_SIGNATURE;
	s->sig_err = ret;
	return 0;
}

SEC("fexit/check_version")
int BPF_PROG(load_check_version_fexit, struct load_info___kt *info, const char *symname, struct module *mod,
	     const __u32 *crc, int ret)
{
	return on_check_version(info, symname, crc, ret, true, true);
}

/* 5.10: no bpf_loop for the module's CRC, and its verifier refuses to read
 * an int pointer argument (crc): the symbol is named, not its CRCs. */
SEC("fexit/check_version")
int BPF_PROG(load_check_version_fexit_nocrc, struct load_info___kt *info, const char *symname, struct module *mod,
	     const __u32 *crc, int ret)
{
	return on_check_version(info, symname, NULL, ret, false, false);
}

SEC("fexit/resolve_symbol")
int BPF_PROG(load_resolve_symbol_fexit, struct module *mod, struct load_info___kt *info, const char *name,
	     char *ownername, const void *ret)
{
	return on_resolve_symbol(info, name, ret);
}

SEC("fexit/same_magic")
int BPF_PROG(load_same_magic_fexit, const char *amagic, const char *bmagic, bool has_crcs, bool ret)
{
	return on_same_magic(amagic, bmagic, ret);
}

SEC("fexit/mod_verify_sig")
int BPF_PROG(load_verify_sig_fexit, const void *mod, struct load_info___kt *info, int ret)
{
	return on_verify_sig(ret);
}

/* The kprobe fallbacks: a kretprobe sees only the return, so a kprobe on
 * the same function keeps its arguments, per task. check_version runs
 * inside resolve_symbol, hence a slot per function. */
struct load_args {
	__u64 resolve[2]; /* info, name */
	__u64 check[3];   /* info, symname, crc */
	__u64 magic[2];   /* amagic, bmagic */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct load_args);
} load_args SEC(".maps");

static __always_inline struct load_args *load_args_of_task(bool create)
{
	struct load_args zero = {}, *a;
	__u32 tid = current_tid();

	a = bpf_map_lookup_elem(&load_args, &tid);
	if (a || !create)
		return a;
	bpf_map_update_elem(&load_args, &tid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&load_args, &tid);
}

SEC("kprobe/resolve_symbol")
int BPF_KPROBE(load_resolve_symbol_entry, struct module *mod, void *info, const char *name)
{
	struct load_args *a = load_args_of_task(true);

	if (a) {
		a->resolve[0] = (__u64)info;
		a->resolve[1] = (__u64)name;
	}
	return 0;
}

SEC("kretprobe/resolve_symbol")
int BPF_KRETPROBE(load_resolve_symbol_kretprobe, const void *ret)
{
	struct load_args *a = load_args_of_task(false);

	if (!a)
		return 0;
	return on_resolve_symbol((void *)a->resolve[0], (const char *)a->resolve[1], ret);
}

SEC("kprobe/check_version")
int BPF_KPROBE(load_check_version_entry, void *info, const char *symname, struct module *mod, const __u32 *crc)
{
	struct load_args *a = load_args_of_task(true);

	if (a) {
		a->check[0] = (__u64)info;
		a->check[1] = (__u64)symname;
		a->check[2] = (__u64)crc;
	}
	return 0;
}

SEC("kretprobe/check_version")
int BPF_KRETPROBE(load_check_version_kretprobe, int ret)
{
	struct load_args *a = load_args_of_task(false);

	if (!a)
		return 0;
	return on_check_version((void *)a->check[0], (const char *)a->check[1], (const __u32 *)a->check[2], ret,
				true, true);
}

/* Before 5.17: no bpf_loop, so the module's CRC is not looked up. */
SEC("kretprobe/check_version")
int BPF_KRETPROBE(load_check_version_kretprobe_nocrc, int ret)
{
	struct load_args *a = load_args_of_task(false);

	if (!a)
		return 0;
	return on_check_version((void *)a->check[0], (const char *)a->check[1], (const __u32 *)a->check[2], ret,
				true, false);
}

SEC("kprobe/same_magic")
int BPF_KPROBE(load_same_magic_entry, const char *amagic, const char *bmagic)
{
	struct load_args *a = load_args_of_task(true);

	if (a) {
		a->magic[0] = (__u64)amagic;
		a->magic[1] = (__u64)bmagic;
	}
	return 0;
}

SEC("kretprobe/same_magic")
int BPF_KRETPROBE(load_same_magic_kretprobe, int ret)
{
	struct load_args *a = load_args_of_task(false);

	if (!a)
		return 0;
	/* bool in the low byte of rax */
	return on_same_magic((const char *)a->magic[0], (const char *)a->magic[1], (__u8)ret);
}

SEC("kretprobe/mod_verify_sig")
int BPF_KRETPROBE(load_verify_sig_kretprobe, int ret)
{
	return on_verify_sig(ret);
}

static __always_inline int on_load_done(int ret)
{
	struct load_failed_event *s;
	__u32 tid = current_tid();

	bpf_map_delete_elem(&load_args, &tid);
	s = bpf_map_lookup_elem(&load_states, &tid);
	if (ret >= 0 || (s && (s->facts & LOAD_INIT_REACHED))) {
		if (s)
			bpf_map_delete_elem(&load_states, &tid);
		return 0;
	}
	if (!s)
		s = load_state(); /* no reason hook fired: the errno alone */
	if (!s)
		return 0;
	fill_header(&s->hdr, EVENT_LOAD_FAILED, sizeof(*s));
	s->ret = ret;
	if (bpf_ringbuf_output(&events, s, sizeof(*s), 0))
		count(COUNTER_RINGBUF_FULL);
	bpf_map_delete_elem(&load_states, &tid);
	return 0;
}

SEC("fexit/load_module")
int BPF_PROG(load_module_fexit, void *info, const char *uargs, int flags, int ret)
{
	return on_load_done(ret);
}

SEC("kretprobe/load_module")
int BPF_KRETPROBE(load_module_kretprobe, int ret)
{
	return on_load_done(ret);
}
