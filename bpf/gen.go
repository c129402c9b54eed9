// Package bpf holds ktracer's kernel side: the CO-RE programs, the one
// wire-format header (ktracer.h) and the Go bindings bpf2go generates from
// them. The generated *_bpfel.{go,o} files are committed so that building
// ktracer needs no clang; `make generate` rebuilds them.
package bpf

//go:generate go tool bpf2go -target amd64 -tags linux -cflags "-O2 -g -Wall -Werror -I../ -I." -type event_header -type mem_range -type module_ranges -type module_load_event -type module_symbol_event -type initcall_event -type module_done_event -type module_free_event -type init_pointer_event -type exec_fault_event -type event_type -type hook_method -type counter -type oops_event -type warning_event -type bad_page_event -type panic_event -type crash_event -type oops_kind -type addr_param -type load_failed_event -type load_fact Kt ktracer.bpf.c

// The startup audit's kernel-memory reader: a separate object, loaded only
// while the audit runs.
//go:generate go tool bpf2go -target amd64 -tags linux -cflags "-O2 -g -Wall -Werror -I../ -I." -type kmem_chunk Kmem kmem.bpf.c
