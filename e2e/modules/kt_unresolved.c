// SPDX-License-Identifier: GPL-2.0
/*
 * kt_unresolved - needs kt_unresolved_dep_fn, which only kt_unresolved_dep
 * exports; insmod without that module loaded fails before init with
 * "Unknown symbol kt_unresolved_dep_fn" (ENOENT): modprobe would have
 * loaded the dependency first.
 *
 * Why: load-failed must name the missing symbol.
 */
#include <linux/module.h>

int kt_unresolved_dep_fn(void);

static int __init kt_unresolved_init(void)
{
	return kt_unresolved_dep_fn();
}

module_init(kt_unresolved_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: a module loaded without its dependency");
