#!/usr/bin/env bash
# How long `calico-preflight doctor` takes on a node with many pods.
#
#   sudo bench/doctor-scale.sh [-p PODS] [-n RUNS] [-b BINARY]
#
# Builds a throw-away node namespace holding PODS (default 500) pods wired as Calico wires them
# (veth with the ee MAC, proxy_arp, forwarding, /32 host route; in the pod the address,
# 169.254.1.1/32 scope link and the default route), each pod in a namespace of its own under
# /run/netns, all created with `ip -batch`. Then runs doctor RUNS times (default 10) inside the
# node namespace and prints the median, min and max wall time and the peak RSS. Everything is
# removed on exit, Ctrl-C or failure. Not part of the test suite.
set -euo pipefail
PODS=500 RUNS=10 BIN=
while getopts "p:n:b:" o; do
    case $o in
        p) PODS=$OPTARG ;; n) RUNS=$OPTARG ;; b) BIN=$OPTARG ;;
        *) sed -n '2,12p' "$0"; exit 2 ;;
    esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
TAG=cpds$$
NODE=$TAG-node
WORK=$(mktemp -d)
cleanup() {
    for i in $(seq 1 "$PODS"); do echo "netns del $TAG-p$i"; done | ip -force -batch - 2>/dev/null || true
    ip netns del "$NODE" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [[ -z $BIN ]]; then
    BIN=$(bash "$REPO/deploy/build-static.sh")
fi
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

echo "== wiring $PODS pods" >&2
ip netns add "$NODE"
ip -n "$NODE" link set lo up
nsenter --net="/run/netns/$NODE" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
for i in $(seq 1 "$PODS"); do echo "netns add $TAG-p$i"; done | ip -batch -
for i in $(seq 1 "$PODS"); do
    v=$(printf 'cali%011d' "$i")
    echo "link add $v type veth peer name eth0 netns $TAG-p$i"
    echo "link set $v address ee:ee:ee:ee:ee:ee"
    echo "link set $v up"
    echo "route add 10.250.$((i / 250)).$((i % 250 + 1))/32 dev $v scope link"
done | ip -n "$NODE" -batch -
nsenter --net="/run/netns/$NODE" sh -c \
    'for f in /proc/sys/net/ipv4/conf/cali*/proxy_arp /proc/sys/net/ipv4/conf/cali*/forwarding; do echo 1 > $f; done'
for i in $(seq 1 "$PODS"); do
    printf 'link set lo up\nlink set eth0 up\naddr add 10.250.%d.%d/32 dev eth0\nroute add 169.254.1.1/32 dev eth0 scope link\nroute add default via 169.254.1.1 dev eth0\n' \
        $((i / 250)) $((i % 250 + 1)) | ip -n "$TAG-p$i" -batch -
done
# Calico's conflist and binaries where the runtime looks, so the node checks pass too.
mkdir -p "$WORK/net.d" "$WORK/bin"
cp "$REPO/conflist-examples/10-calico.conflist" "$WORK/net.d/"
for b in calico calico-ipam calico-preflight portmap; do printf '#!/bin/sh\nexit 0\n' >"$WORK/bin/$b"; chmod 755 "$WORK/bin/$b"; done

run() {
    nsenter --net="/run/netns/$NODE" "$BIN" doctor --conf-dir "$WORK/net.d" --cni-bin-dir "$WORK/bin" "$@"
}
summary=$(run | grep '^Summary') || true
echo "$summary"
[[ $summary == "Summary: $PODS pod(s) on cali* veths: $PODS healthy"* ]] || { echo "unexpected doctor result" >&2; exit 1; }
for _ in $(seq 1 "$RUNS"); do
    /usr/bin/time -f '%e %M' -o "$WORK/t" nsenter --net="/run/netns/$NODE" "$BIN" doctor \
        --conf-dir "$WORK/net.d" --cni-bin-dir "$WORK/bin" >/dev/null || true
    cat "$WORK/t" >>"$WORK/times"
done
sort -n "$WORK/times" | awk -v pods="$PODS" -v runs="$RUNS" '
    { t[NR] = $1; if ($2 > rss) rss = $2 }
    END { printf "doctor on %d pods, %d runs: median %.3f s, min %.3f s, max %.3f s, peak RSS %d KiB\n",
          pods, runs, t[int((NR + 1) / 2)], t[1], t[NR], rss }'
