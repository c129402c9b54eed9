// SPDX-License-Identifier: GPL-2.0
/*
 * kt_audit_static - `ktracer audit` recall: static initializers in data
 * that outlives init point at __init functions.
 *
 * Why: the pointers survive init and would be called into freed text. Two
 * shapes: a plain table in .data (modpost warns) and a struct whose name
 * ends in _ops in .data (6.1's modpost whitelists *_ops names and stays
 * silent), plus a const one in .rodata (modpost of 6.1 does not check
 * .rodata). Nothing calls them after init, so loading is harmless.
 */
#include <linux/kernel.h>
#include <linux/module.h>

struct kt_audit_handlers {
	int id;
	int (*handle)(int x);
};

static noinline int __init kt_audit_static_helper(int x)
{
	return x * 3 + 1;
}

static noinline int __init kt_audit_static_other(int x)
{
	return x ^ 0x5a;
}

/* Non-static, so the compiler keeps them as they are. */
struct kt_audit_handlers kt_audit_static_table = { 1, kt_audit_static_helper };
struct kt_audit_handlers kt_audit_static_ops = { 2, kt_audit_static_other };
const struct kt_audit_handlers kt_audit_static_const = { 3, kt_audit_static_helper };

static int __init kt_audit_static_init(void)
{
	pr_info("kt_audit_static: %d %d\n", kt_audit_static_helper(1), kt_audit_static_other(2));
	return 0;
}

static void __exit kt_audit_static_exit(void)
{
}

module_init(kt_audit_static_init);
module_exit(kt_audit_static_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: audit recall, static initializers pointing at __init code");
