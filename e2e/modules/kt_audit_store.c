// SPDX-License-Identifier: GPL-2.0
/*
 * kt_audit_store - `ktracer audit` recall: init code stores the address of
 * an __init function into a global in .data (seed incident 2's shape).
 *
 * Why: the reference is from .init.text to .init.text, which modpost does
 * not check, so the build is silent; the pointer outlives init. Nothing
 * calls it after init, so loading is harmless.
 */
#include <linux/kernel.h>
#include <linux/module.h>

struct kt_audit_ops {
	int id;
	int (*handle)(int x);
};

/* Initialised, so it lives in .data. */
struct kt_audit_ops kt_audit_store_ops = { .id = 1 };

static noinline int __init kt_audit_store_helper(int x)
{
	return x * 7 + 2;
}

static int __init kt_audit_store_init(void)
{
	kt_audit_store_ops.handle = kt_audit_store_helper; /* the bug */
	pr_info("kt_audit_store: %d\n", kt_audit_store_ops.handle(3));
	return 0;
}

static void __exit kt_audit_store_exit(void)
{
}

module_init(kt_audit_store_init);
module_exit(kt_audit_store_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: audit recall, runtime store of an __init address into .data");
