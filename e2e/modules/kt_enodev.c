// SPDX-License-Identifier: GPL-2.0
/*
 * kt_enodev - a module whose init fails the correct way, with -ENODEV.
 *
 * Why: the well-behaved failure path (insmod fails, module freed at once)
 * must be reported as a failed init with value -19, not as a bug.
 */
#include <linux/errno.h>
#include <linux/module.h>

static int __init kt_enodev_init(void)
{
	return -ENODEV;
}

module_init(kt_enodev_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: init returns -ENODEV");
