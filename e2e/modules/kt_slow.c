// SPDX-License-Identifier: GPL-2.0
/*
 * kt_slow - a module whose init takes 300 ms and succeeds.
 *
 * Why: ktracer measures initcall duration; a known sleep gives the tests a
 * lower bound to assert (>= 300 ms) on a real kernel.
 */
#include <linux/delay.h>
#include <linux/module.h>

static int __init kt_slow_init(void)
{
	msleep(300);
	return 0;
}

static void __exit kt_slow_exit(void)
{
}

module_init(kt_slow_init);
module_exit(kt_slow_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: init sleeps 300 ms then returns 0");
