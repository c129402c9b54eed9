// SPDX-License-Identifier: GPL-2.0
/*
 * kt_initok - the control for kt_timebomb: same shape, done right.
 *
 * Why: the ops struct in .data points to a normal (.text) function, and the
 * __init helper is only called during init, its pointer never stored. A
 * checker for stored pointers into init text must stay silent here, and
 * writing 1 to the trigger parameter is harmless.
 */
#include <linux/compiler.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

struct kt_ops {
	int (*handle_compressed)(const u8 *buf, size_t len);
};

/* Same placement as kt_timebomb's global_ops: .data, not .bss. */
static struct kt_ops global_ops __section(".data");

static const u8 kt_fw_blob[] = { 0x1f, 0x8b, 0x08, 0x00, 0x6b, 0x74 };

/* Runtime handler: no __init, stays in .text for the module's lifetime. */
static int kt_handle_compressed(const u8 *buf, size_t len)
{
	unsigned int sum = 0;
	size_t i;

	for (i = 0; i < len; i++)
		sum = sum * 31 + buf[i];
	return sum & 0x7fff;
}

/* Init-only work: called directly, its address is never kept. */
static int __init kt_init_helper(const u8 *buf, size_t len)
{
	return kt_handle_compressed(buf, len) ^ 0x55;
}

static int __init kt_initok_init(void)
{
	global_ops.handle_compressed = kt_handle_compressed;
	pr_info("kt_initok: firmware checksum %d\n",
		kt_init_helper(kt_fw_blob, sizeof(kt_fw_blob)));
	return 0;
}

static int kt_trigger_set(const char *val, const struct kernel_param *kp)
{
	int (*fn)(const u8 *buf, size_t len);
	bool on;
	int ret;

	ret = kstrtobool(val, &on);
	if (ret)
		return ret;
	if (!on)
		return 0;

	fn = READ_ONCE(global_ops.handle_compressed);
	pr_info("kt_initok: calling handle_compressed at %px\n", fn);
	ret = fn(kt_fw_blob, sizeof(kt_fw_blob));
	pr_info("kt_initok: handle_compressed returned %d\n", ret);
	return 0;
}

static const struct kernel_param_ops kt_trigger_ops = {
	.set = kt_trigger_set,
};
module_param_cb(trigger, &kt_trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "write 1 to call the stored handle_compressed pointer");

static void __exit kt_initok_exit(void)
{
}

module_init(kt_initok_init);
module_exit(kt_initok_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: control for kt_timebomb, pointer to .text");
