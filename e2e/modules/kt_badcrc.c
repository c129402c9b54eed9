// SPDX-License-Identifier: GPL-2.0
/*
 * kt_badcrc - uses kstrdup; the Makefile then changes the CRC recorded for
 * kstrdup in the .ko's __versions (spoil.sh), as if the module had been
 * built against other headers. The kernel refuses it before init:
 * "disagrees about version of symbol kstrdup" (EINVAL). (Not kmemdup: from
 * 6.10 it is a macro around kmemdup_noprof, so the symbol's name differs
 * between kernels.)
 *
 * Why: load-failed must name the symbol and both CRCs.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

static void *kt_badcrc_copy;

static int __init kt_badcrc_init(void)
{
	static const char msg[] = "kt_badcrc";

	kt_badcrc_copy = kstrdup(msg, GFP_KERNEL);
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
