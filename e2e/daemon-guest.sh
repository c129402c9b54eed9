# Guest side of TestDaemonScrape (e2e/daemon_test.go): run `ktracer daemon`
# on the user-mode network, let the host's Prometheus scrape it, load
# kt_positive when the host says so, and stop the daemon with SIGTERM when
# the host is done. The host talks to the guest through a forwarded port
# (19500): it sends one word, which `hostsays` waits for.
set -u
PORT=19436

/payload/bin/modprobe virtio_pci && /payload/bin/modprobe virtio_net
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0

# hostsays WORD: wait until the host sends WORD. The host resends until
# the guest moves on, since its first try may come before nc listens; the
# wait is bounded by run.sh's --timeout.
hostsays() {
	echo "KT-OUT:wait:$1"
	while :; do
		nc -l -p 19500 </dev/null >/tmp/sig 2>/dev/null
		grep -q "$1" /tmp/sig && return 0
	done
}

ktracer daemon --web.listen-address ":$PORT" --log.format json --log.file /tmp/daemon.log 2>/tmp/daemon.err &
pid=$!
i=0
until wget -q -O /tmp/healthz "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 240 ] || ! kill -0 $pid 2>/dev/null; then break; fi
	sleep 0.5
done
sed 's/^/KT-OUT:ready:/' /tmp/healthz 2>/dev/null
grep -q '^ok$' /tmp/healthz 2>/dev/null
echo "KT-OUT:ready:exit:$?"

# A second daemon on the same port fails before attaching anything.
ktracer daemon --web.listen-address ":$PORT" >/dev/null 2>/tmp/dup.err
echo "KT-OUT:port-in-use:exit:$?"
sed 's/^/KT-OUT:port-in-use:/' /tmp/dup.err

# The host waits for a first scrape, so Prometheus sees the counter appear.
hostsays insmod
/payload/bin/insmod /payload/modules/kt_positive.ko
echo "KT-OUT:insmod:exit:$?"

hostsays done
# logrotate's way: move the file, SIGHUP, and the daemon writes a new one.
mv /tmp/daemon.log /tmp/daemon.log.1
kill -HUP $pid
i=0
until grep -q 'log file reopened' /tmp/daemon.log 2>/dev/null || [ $i -gt 60 ]; do
	i=$((i + 1))
	sleep 0.5
done
kill -TERM $pid
wait $pid
echo "KT-OUT:daemon:exit:$?"
sed 's/^/KT-OUT:daemon-log:/' /tmp/daemon.log.1
sed 's/^/KT-OUT:daemon-log-reopened:/' /tmp/daemon.log
sed 's/^/KT-OUT:daemon-stderr:/' /tmp/daemon.err
echo "KT-OUT:daemon-log:exit:0"
