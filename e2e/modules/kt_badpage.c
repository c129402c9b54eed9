// SPDX-License-Identifier: GPL-2.0
/*
 * kt_badpage - the "BUG: Bad page state" signature from the seed's case 2:
 * writing 1 to the trigger frees a page whose struct page still says it is
 * mapped (a stale ->mapping left by code that kept using it), so the page
 * allocator's free-time check reports it.
 *
 * Why: ktracer must report the bad page with its pfn, flags, the kernel's
 * reason and the function that freed it; the kernel carries on (the page
 * is leaked, not reused).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/gfp.h>
#include <linux/mm.h>

/*
 * Order 4: above the per-CPU free lists' orders, so the page goes straight
 * back to the buddy allocator and is checked now, in this module's context;
 * an order-0 page's check is deferred to whichever task drains the lists.
 */
#define KT_BADPAGE_ORDER 4

static noinline void kt_badpage_release(struct page *page)
{
	__free_pages(page, KT_BADPAGE_ORDER);
}

static int kt_badpage_trigger_set(const char *val, const struct kernel_param *kp)
{
	struct page *page;
	bool on;
	int ret = kstrtobool(val, &on);

	if (ret || !on)
		return ret;
	page = alloc_pages(GFP_KERNEL, KT_BADPAGE_ORDER);
	if (!page)
		return -ENOMEM;
	pr_info("kt_badpage: freeing pfn %#lx with a stale mapping\n", page_to_pfn(page));
	page->mapping = (void *)0x4b54; /* stale: the bug */
	kt_badpage_release(page);
	return 0;
}

static const struct kernel_param_ops kt_badpage_trigger_ops = {
	.set = kt_badpage_trigger_set,
};
module_param_cb(trigger, &kt_badpage_trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "write 1 to free a page with a stale mapping");

static int __init kt_badpage_init(void)
{
	return 0;
}

static void __exit kt_badpage_exit(void)
{
}

module_init(kt_badpage_init);
module_exit(kt_badpage_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: free a page with a stale mapping (bad page state)");
