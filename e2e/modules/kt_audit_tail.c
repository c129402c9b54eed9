// SPDX-License-Identifier: GPL-2.0
/*
 * kt_audit_tail - `ktracer audit` recall: code that survives init reaches
 * __init code, by a tail jump (kt_audit_tail_dispatch ends in
 * `return helper(x)`, compiled to jmp) and by a plain call
 * (kt_audit_tail_calls). Either runs freed text once init is over.
 *
 * Why: modpost reports both as section mismatches, but only as warnings
 * on Debian (CONFIG_SECTION_MISMATCH_WARN_ONLY=y). Only init calls the two
 * functions, so loading is harmless.
 */
#include <linux/kernel.h>
#include <linux/module.h>

static noinline int __init kt_audit_tail_helper(int x)
{
	return x * 9 + 4;
}

/* Non-static and exported, so neither is inlined away nor dropped. */
noinline int kt_audit_tail_dispatch(int x)
{
	if (x < 0)
		return -EINVAL;
	return kt_audit_tail_helper(x); /* sibling call: jmp */
}
EXPORT_SYMBOL_GPL(kt_audit_tail_dispatch);

noinline int kt_audit_tail_calls(int x)
{
	return kt_audit_tail_helper(x) + x; /* call */
}
EXPORT_SYMBOL_GPL(kt_audit_tail_calls);

static int __init kt_audit_tail_init(void)
{
	pr_info("kt_audit_tail: %d %d\n", kt_audit_tail_dispatch(1), kt_audit_tail_calls(2));
	return 0;
}

static void __exit kt_audit_tail_exit(void)
{
}

module_init(kt_audit_tail_init);
module_exit(kt_audit_tail_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: audit recall, tail jump and call from .text into __init code");
