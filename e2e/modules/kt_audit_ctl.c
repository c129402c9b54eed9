// SPDX-License-Identifier: GPL-2.0
/*
 * kt_audit_ctl - the control for the kt_audit_* modules: __init functions
 * only called directly (one by a tail jump from another __init function),
 * an ops table in .data pointing at .text functions, and a .text function
 * whose address is stored at init. `ktracer audit` must stay silent.
 */
#include <linux/kernel.h>
#include <linux/module.h>

struct kt_audit_ops {
	int (*handle)(int x);
};

static noinline int kt_audit_ctl_runtime(int x)
{
	return x * 2;
}

struct kt_audit_ops kt_audit_ctl_static = { kt_audit_ctl_runtime };
struct kt_audit_ops kt_audit_ctl_stored;

static noinline int __init kt_audit_ctl_leaf(int x)
{
	return x * 13 + 1;
}

/* A tail call inside init text: both sides are freed together. */
static noinline int __init kt_audit_ctl_helper(int x)
{
	if (x < 0)
		return -EINVAL;
	return kt_audit_ctl_leaf(x);
}

static int __init kt_audit_ctl_init(void)
{
	kt_audit_ctl_stored.handle = kt_audit_ctl_runtime;
	pr_info("kt_audit_ctl: %d %d\n", kt_audit_ctl_helper(1), kt_audit_ctl_leaf(2));
	return 0;
}

static void __exit kt_audit_ctl_exit(void)
{
}

module_init(kt_audit_ctl_init);
module_exit(kt_audit_ctl_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: audit control, __init functions only called directly");
