// SPDX-License-Identifier: GPL-2.0
/*
 * kt_audit_table - `ktracer audit` recall: init code stores the address of
 * an __init function into an element of a table in .bss, once at a fixed
 * index and once at an index known only at run time.
 *
 * Why: a table element is not a named global: the report must name the
 * table and the offset of the element. modpost does not see it.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

struct kt_audit_ops {
	int (*handle)(int x);
	void *priv;
};

static struct kt_audit_ops kt_audit_tbl[4];

static int slot = 3;
module_param(slot, int, 0444);

static noinline int __init kt_audit_table_helper(int x)
{
	return x * 5 + 3;
}

static noinline int __init kt_audit_table_other(int x)
{
	return x - 11;
}

/* Runtime reader: keeps the table alive; does not call the pointers. */
int kt_audit_table_present(int i)
{
	return READ_ONCE(kt_audit_tbl[i & 3].handle) != NULL;
}
EXPORT_SYMBOL_GPL(kt_audit_table_present);

static int __init kt_audit_table_init(void)
{
	kt_audit_tbl[2].handle = kt_audit_table_helper;      /* fixed index */
	WRITE_ONCE(kt_audit_tbl[slot & 3].handle, kt_audit_table_other); /* run-time index */
	pr_info("kt_audit_table: %d %d\n", kt_audit_tbl[2].handle(1), kt_audit_table_present(slot));
	return 0;
}

static void __exit kt_audit_table_exit(void)
{
}

module_init(kt_audit_table_init);
module_exit(kt_audit_table_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: audit recall, __init address stored into a .bss table element");
