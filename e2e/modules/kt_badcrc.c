// SPDX-License-Identifier: GPL-2.0
/*
 * kt_badcrc - uses kmemdup; the Makefile then changes the CRC recorded for
 * kmemdup in the .ko's __versions (spoil.sh), as if the module had been
 * built against other headers. The kernel refuses it before init:
 * "disagrees about version of symbol kmemdup" (EINVAL).
 *
 * Why: load-failed must name the symbol and both CRCs.
 */
#include <linux/module.h>
#include <linux/slab.h>

static void *kt_badcrc_copy;

static int __init kt_badcrc_init(void)
{
	static const char msg[] = "kt_badcrc";

	kt_badcrc_copy = kmemdup(msg, sizeof(msg), GFP_KERNEL);
	return kt_badcrc_copy ? 0 : -ENOMEM;
}

static void __exit kt_badcrc_exit(void)
{
	kfree(kt_badcrc_copy);
}

module_init(kt_badcrc_init);
module_exit(kt_badcrc_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: symbol version (CRC) mismatch, after spoil.sh");
