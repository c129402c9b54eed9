// SPDX-License-Identifier: GPL-2.0
/*
 * kt_positive - seed incident 5: a module init that cleans up after a failed
 * pci_register_driver() and then returns 1 instead of a negative errno.
 *
 * Why: a positive return is taken as success by do_init_module(), so the
 * module is reported loaded (insmod exits 0) while everything it set up has
 * already been torn down. The kernel only prints "suspiciously returned 1";
 * ktracer must report kt_positive_init returning 1.
 *
 * The PCI driver is deliberately named "pcieport", the name of the PCIe port
 * driver built into the Debian kernel, so driver_register() finds a duplicate
 * and pci_register_driver() fails with -EBUSY on every machine, with or
 * without PCI hardware.
 */
#include <linux/cdev.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>

struct kt_positive_state {
	u8 buf[512];
};

static struct kt_positive_state *kt_positive_state;
static struct cdev kt_positive_cdev;
static dev_t kt_positive_devno;

static int kt_positive_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	return -ENODEV;
}

/* Vendor 0xffff is never a real device: probe can never be called. */
static const struct pci_device_id kt_positive_ids[] = {
	{ PCI_DEVICE(0xffff, 0x4b54) },
	{ }
};

static struct pci_driver kt_positive_pci_driver = {
	.name = "pcieport",	/* collides with the built-in driver: -EBUSY */
	.id_table = kt_positive_ids,
	.probe = kt_positive_probe,
};

static const struct file_operations kt_positive_fops = {
	.owner = THIS_MODULE,
};

static int __init kt_positive_init(void)
{
	int ret;

	kt_positive_state = kmalloc(sizeof(*kt_positive_state), GFP_KERNEL);
	if (!kt_positive_state)
		return -ENOMEM;

	ret = alloc_chrdev_region(&kt_positive_devno, 0, 1, "kt_positive");
	if (ret) {
		kfree(kt_positive_state);
		return ret;
	}

	cdev_init(&kt_positive_cdev, &kt_positive_fops);
	kt_positive_cdev.owner = THIS_MODULE;
	ret = cdev_add(&kt_positive_cdev, kt_positive_devno, 1);
	if (ret) {
		unregister_chrdev_region(kt_positive_devno, 1);
		kfree(kt_positive_state);
		return ret;
	}

	ret = pci_register_driver(&kt_positive_pci_driver);
	if (ret) {
		pr_info("kt_positive: pci_register_driver failed: %d, cleaning up\n", ret);
		cdev_del(&kt_positive_cdev);
		unregister_chrdev_region(kt_positive_devno, 1);
		kfree(kt_positive_state);
		kt_positive_state = NULL;
		return 1; /* BUG (on purpose): should be "return ret;" */
	}

	return 0;
}

/*
 * The real driver's exit would unregister the PCI driver and delete the cdev
 * a second time. Here init has already undone everything (that is the bug),
 * so exit only has to stay harmless to let tests rmmod and reload the module.
 */
static void __exit kt_positive_exit(void)
{
	if (kt_positive_state) {
		pci_unregister_driver(&kt_positive_pci_driver);
		cdev_del(&kt_positive_cdev);
		unregister_chrdev_region(kt_positive_devno, 1);
		kfree(kt_positive_state);
	}
}

module_init(kt_positive_init);
module_exit(kt_positive_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktracer e2e: init returns 1 after a failed pci_register_driver (incident 5)");
