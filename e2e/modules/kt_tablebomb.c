// SPDX-License-Identifier: GPL-2.0
/*
 * kt_tablebomb - seed incident 2, as udev meets it: a pointer to an __init
 * function is stored in an element of a zero-initialised table (.bss), the
 * module is loaded at boot before any tracer runs, and the pointer is
 * called much later. ktracer's startup audit must find the word
 * (kt_table+0x28, kt_table_helper) from the module's file and sysfs, and a
 * later write to /sys/module/kt_tablebomb/parameters/trigger must be
 * reported as freed-init-call naming kt_table_helper and the caller.
 *
 * Built with -DKT_REBUILT it is the same module with another build-id: the
 * e2e test puts that file where modules.dep points after loading this one,
 * and the audit must refuse to name anything from it.
 */
#include <linux/compiler.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

struct kt_ops {
	const char *name;
	int (*fn)(int x);
};

/* Zero-initialised: .bss. Element 2's fn is at offset 2*16+8 = 0x28. */
static struct kt_ops kt_table[4];

/*
 * 1 MiB of init text before the helper. The audit's tests load this
 * module before ktracer, so its freed init text is the lowest hole in
 * module space when ktracer attaches; ktracer's own page-sized
 * module_alloc()s (BPF trampolines, kprobe slots) and later modules fill
 * such holes from their start. With the helper at the end of a large hole,
 * its page stays unmapped and the stale call faults, instead of running
 * whatever took the page (which the audit reports, but no fault shows).
 * 256 KiB was not enough on 5.10: every vmalloc'd page there comes with a
 * guard page, and a session's BPF JIT images and trampolines took the
 * helper's page.
 */
asm(".pushsection .init.text, \"ax\"\n"
    "kt_init_filler:\n"
    ".skip 1048576, 0xcc\n"
    ".popsection");

static int __init kt_table_helper(int x)
{
#ifdef KT_REBUILT
	return x * 5 + 1;
#else
	return x * 3 + 1;
#endif
}

static int __init kt_tablebomb_init(void)
{
	kt_table[2].name = "helper";
	kt_table[2].fn = kt_table_helper; /* BUG (on purpose) */
	pr_info("kt_tablebomb: helper(1) = %d\n", kt_table[2].fn(1));
	return 0;
}

static noinline int kt_tablebomb_call(int i)
{
	int (*fn)(int x) = READ_ONCE(kt_table[i].fn);

	pr_info("kt_tablebomb: calling %s at %px\n", kt_table[i].name, fn);
	return fn(1); /* oops: freed init text */
}

static int kt_trigger_set(const char *val, const struct kernel_param *kp)
{
	bool on;
	int ret = kstrtobool(val, &on);

	if (ret)
		return ret;
	if (on)
		pr_info("kt_tablebomb: returned %d\n", kt_tablebomb_call(2));
	return 0;
}

static const struct kernel_param_ops kt_trigger_ops = {
	.set = kt_trigger_set,
};
module_param_cb(trigger, &kt_trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "write 1 to call kt_table[2].fn");

static void __exit kt_tablebomb_exit(void)
{
}

module_init(kt_tablebomb_init);
module_exit(kt_tablebomb_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: __init pointer in a .bss table element, loaded before ktracer");
