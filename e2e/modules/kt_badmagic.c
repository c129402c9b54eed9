// SPDX-License-Identifier: GPL-2.0
/*
 * kt_badmagic - a plain module whose vermagic the Makefile then changes
 * (spoil.sh: "mod_unload" dropped, as if built for a kernel without module
 * unloading). The kernel refuses it before init: "version magic ... should
 * be ..." (ENOEXEC).
 *
 * Why: load-failed must quote both vermagic strings where the check is
 * hooked (6.1+).
 */
#include <linux/module.h>

static int __init kt_badmagic_init(void)
{
	return 0;
}

static void __exit kt_badmagic_exit(void)
{
}

module_init(kt_badmagic_init);
module_exit(kt_badmagic_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: vermagic mismatch, after spoil.sh");
