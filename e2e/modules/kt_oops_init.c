// SPDX-License-Identifier: GPL-2.0
/*
 * kt_oops_init - seed incident 1: an init function that calls a helper which
 * dereferences a NULL pointer at offset 0x18, so the kernel oopses while the
 * initcall runs and "initcall ... returned" never follows "calling ...".
 *
 * Why: `ktracer boot` must name the initcall that was running when the oops
 * hit, from an initcall_debug log. The oops kills insmod (panic_on_oops=0);
 * the module stays half-loaded, which is fine in a throwaway VM.
 */
#include <linux/module.h>

struct kt_oops_stats {
	u64 pad[3];
	u64 rx_packets; /* at 0x18, like the seed's oops */
};

/* Read through a volatile pointer so the compiler cannot prove the NULL. */
static struct kt_oops_stats *volatile kt_oops_stats;

static noinline int kt_oops_net_stats_init(void)
{
	return (int)READ_ONCE(kt_oops_stats->rx_packets);
}

static int __init kt_oops_init(void)
{
	return kt_oops_net_stats_init();
}

module_init(kt_oops_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: init oopses on a NULL dereference (seed incident 1)");
