// SPDX-License-Identifier: GPL-2.0
/*
 * kt_audit_pass - `ktracer audit` recall: init code passes the address of
 * an __init function to another (non-init, noinline) function.
 *
 * Why: what the callee does with it is not visible at the call site (a
 * register_*() call usually keeps it), so it is reported as a warning.
 * modpost does not see it. This callee only prints it.
 */
#include <linux/kernel.h>
#include <linux/module.h>

noinline void kt_audit_pass_register(int (*fn)(int))
{
	pr_info("kt_audit_pass: registered %ps\n", fn);
}
EXPORT_SYMBOL_GPL(kt_audit_pass_register);

static noinline int __init kt_audit_pass_helper(int x)
{
	return x + 42;
}

static int __init kt_audit_pass_init(void)
{
	kt_audit_pass_register(kt_audit_pass_helper);
	return 0;
}

static void __exit kt_audit_pass_exit(void)
{
}

module_init(kt_audit_pass_init);
module_exit(kt_audit_pass_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: audit recall, __init address passed to a function");
