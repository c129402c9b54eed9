// SPDX-License-Identifier: GPL-2.0
/*
 * kt_timebomb - seed incident 2: a pointer to an __init function is stored
 * in persistent data and called after the module's init memory is freed.
 *
 * Why: init succeeds and nothing looks wrong until the stored pointer is
 * used. Writing to /sys/module/kt_timebomb/parameters/trigger calls it; by
 * then do_free_init() has vfree()d the init text, so the call is an
 * instruction fetch from an unmapped page in the freed init range and the
 * writing process oopses. ktracer should flag the stored pointer at load
 * time and the fault when it fires. Trigger before loading other modules:
 * a later module_alloc() may reuse the freed range (then the call runs
 * someone else's code, as in the incident, instead of faulting).
 */
#include <linux/compiler.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

struct kt_ops {
	int (*handle_compressed)(const u8 *buf, size_t len);
};

/*
 * Zero-initialised, so the compiler would put it in .bss; the explicit
 * section keeps it in .data as in the incident (both outlive init anyway).
 */
static struct kt_ops global_ops __section(".data");

/* "Compressed firmware" processed once during init. */
static const u8 kt_fw_blob[] = { 0x1f, 0x8b, 0x08, 0x00, 0x6b, 0x74 };

#ifdef KT_BIG_INIT
/*
 * The startup audit's daemon test (e2e/startup.sh) loads this build: 2 MiB
 * of init text before the helper, as in kt_tablebomb. ktracer's own
 * page-sized module_alloc()s (BPF JIT images and trampolines; on 5.10 each
 * with a guard page) fill a freed init hole from its start, so with the
 * helper at the end of a large hole its page stays unmapped and the stale
 * call faults, instead of running whatever took the page (seen in
 * TestStartupAudit/bullseye). Not the default: on 7.x a small freed init
 * text stays mapped, filled with int3 (the matrix's int3 case), while one
 * this large is unmapped and page-faults as on 6.1.
 */
asm(".pushsection .init.text, \"ax\"\n"
    "kt_init_filler:\n"
    ".skip 2097152, 0xcc\n"
    ".popsection");
#endif

/* Only meant for init time, hence __init: it lives in .init.text. */
static int __init kt_init_helper(const u8 *buf, size_t len)
{
	unsigned int sum = 0;
	size_t i;

	for (i = 0; i < len; i++)
		sum = sum * 31 + buf[i];
	return sum & 0x7fff;
}

static int __init kt_timebomb_init(void)
{
	global_ops.handle_compressed = kt_init_helper; /* BUG (on purpose) */
	pr_info("kt_timebomb: firmware checksum %d\n",
		global_ops.handle_compressed(kt_fw_blob, sizeof(kt_fw_blob)));
	return 0;
}

/* Runtime path: a later "compressed request" reuses the stored pointer. */
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
	pr_info("kt_timebomb: calling handle_compressed at %px\n", fn);
	ret = fn(kt_fw_blob, sizeof(kt_fw_blob)); /* oops: freed init text */
	pr_info("kt_timebomb: handle_compressed returned %d\n", ret);
	return 0;
}

static const struct kernel_param_ops kt_trigger_ops = {
	.set = kt_trigger_set,
};
module_param_cb(trigger, &kt_trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "write 1 to call the stored handle_compressed pointer");

static void __exit kt_timebomb_exit(void)
{
}

module_init(kt_timebomb_init);
module_exit(kt_timebomb_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: stored pointer to __init code (incident 2)");
