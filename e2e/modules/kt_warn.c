// SPDX-License-Identifier: GPL-2.0
/*
 * kt_warn - a driver that hits its own WARN_ON: writing 1 to the trigger
 * parameter finds a reference count that must never be zero at that point.
 *
 * Why: ktracer must report the WARN with its file and line and the function
 * that issued it; the kernel carries on.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>

static int kt_warn_refs; /* should be >= 1 while the device is open */

static noinline void kt_warn_release(void)
{
	WARN_ON(kt_warn_refs == 0); /* the line the test expects */
}

static int kt_warn_trigger_set(const char *val, const struct kernel_param *kp)
{
	bool on;
	int ret = kstrtobool(val, &on);

	if (ret || !on)
		return ret;
	kt_warn_release();
	return 0;
}

static const struct kernel_param_ops kt_warn_trigger_ops = {
	.set = kt_warn_trigger_set,
};
module_param_cb(trigger, &kt_warn_trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "write 1 to release a reference that was never taken");

static int __init kt_warn_init(void)
{
	return 0;
}

static void __exit kt_warn_exit(void)
{
}

module_init(kt_warn_init);
module_exit(kt_warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: WARN_ON on a trigger (warning path)");
