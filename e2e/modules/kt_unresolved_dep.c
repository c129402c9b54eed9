// SPDX-License-Identifier: GPL-2.0
/*
 * kt_unresolved_dep - exports kt_unresolved_dep_fn for kt_unresolved. The
 * tests never load it: it exists so that modpost, which sees both modules,
 * accepts kt_unresolved's reference, as it would a real dependency.
 */
#include <linux/module.h>

int kt_unresolved_dep_fn(void)
{
	return 0;
}
EXPORT_SYMBOL_GPL(kt_unresolved_dep_fn);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: the dependency kt_unresolved is loaded without");
