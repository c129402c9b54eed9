// SPDX-License-Identifier: GPL-2.0
/*
 * kt_good - the control module: allocates state, registers a char device,
 * returns 0, and its exit undoes all of it in reverse order.
 *
 * Why: a correct module must produce no finding at all.
 */
#include <linux/cdev.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/slab.h>

struct kt_good_state {
	u8 buf[512];
};

static struct kt_good_state *kt_good_state;
static struct cdev kt_good_cdev;
static dev_t kt_good_devno;

static const struct file_operations kt_good_fops = {
	.owner = THIS_MODULE,
};

static int __init kt_good_init(void)
{
	int ret;

	kt_good_state = kzalloc(sizeof(*kt_good_state), GFP_KERNEL);
	if (!kt_good_state)
		return -ENOMEM;

	ret = alloc_chrdev_region(&kt_good_devno, 0, 1, "kt_good");
	if (ret)
		goto err_free_state;

	cdev_init(&kt_good_cdev, &kt_good_fops);
	kt_good_cdev.owner = THIS_MODULE;
	ret = cdev_add(&kt_good_cdev, kt_good_devno, 1);
	if (ret)
		goto err_unregister_region;

	return 0;

err_unregister_region:
	unregister_chrdev_region(kt_good_devno, 1);
err_free_state:
	kfree(kt_good_state);
	return ret;
}

static void __exit kt_good_exit(void)
{
	cdev_del(&kt_good_cdev);
	unregister_chrdev_region(kt_good_devno, 1);
	kfree(kt_good_state);
}

module_init(kt_good_init);
module_exit(kt_good_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: correct module (control)");
