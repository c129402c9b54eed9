# Guest script, run on every boot of one QEMU process (run.sh --reboot):
# boots 1-3 start the daemon, which records the boot in its history on the
# disk, then panic; boot 4 asks ktracer check for a panic loop.
/payload/bin/modprobe virtio_pci
/payload/bin/modprobe virtio_blk
mkdir -p /var/lib/ktracer
mount -t ext4 /dev/vda /var/lib/ktracer || { echo "KT-OUT:loop:exit:90"; exit 1; }
n=$(($(cat /var/lib/ktracer/boots-seen 2>/dev/null || echo 0) + 1))
echo $n >/var/lib/ktracer/boots-seen
sync
id=$(cat /proc/sys/kernel/random/boot_id)
if [ $n -le 3 ]; then
	ktracer daemon --state-dir /var/lib/ktracer >/tmp/daemon.log 2>&1 &
	i=0
	while ! grep -q "$id" /var/lib/ktracer/boots.json 2>/dev/null && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
	echo "KT-OUT:boot$n:recorded:$(grep -c "$id" /var/lib/ktracer/boots.json)"
	sync
	echo c >/proc/sysrq-trigger
	sleep 30
	echo "KT-OUT:boot$n:still alive after the panic"
	exit 1
fi
ktracer check --output json --state-dir /var/lib/ktracer --loop-count 3 --loop-window 1h >/tmp/check.out 2>&1
echo "KT-OUT:loop:exit:$?" >/tmp/check.status
echo 1 >/proc/sys/kernel/printk
cat /tmp/check.status
sed 's/^/KT-OUT:loop:/' /tmp/check.out
umount /var/lib/ktracer
