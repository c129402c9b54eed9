// SPDX-License-Identifier: GPL-2.0
/*
 * kt_oops - a driver bug that oopses at run time: writing 1 to the trigger
 * parameter dereferences a NULL state pointer in kt_oops_handle(), as a
 * driver does when it uses state its failed probe never set up.
 *
 * Why: ktracer must report the oops with the module and function, live,
 * while the kernel survives it (panic_on_oops=0).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>

struct kt_oops_state {
	int pad[6];
	int count;
};

static struct kt_oops_state *kt_oops_state; /* never allocated: the bug */

static noinline int kt_oops_handle(void)
{
	return ++kt_oops_state->count; /* NULL + 0x18: page fault */
}

static int kt_oops_trigger_set(const char *val, const struct kernel_param *kp)
{
	bool on;
	int ret = kstrtobool(val, &on);

	if (ret || !on)
		return ret;
	pr_info("kt_oops: handling a request\n");
	return kt_oops_handle() > 0 ? 0 : -EIO;
}

static const struct kernel_param_ops kt_oops_trigger_ops = {
	.set = kt_oops_trigger_set,
};
module_param_cb(trigger, &kt_oops_trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "write 1 to dereference the NULL state pointer");

static int __init kt_oops_init(void)
{
	return 0;
}

static void __exit kt_oops_exit(void)
{
}

module_init(kt_oops_init);
module_exit(kt_oops_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: NULL dereference on a trigger (oops path)");
