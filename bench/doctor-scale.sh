#!/usr/bin/env bash
# How long `calico-preflight doctor` takes on a node with many pods, and how that grows.
#
#   sudo bench/doctor-scale.sh [-p "PODS..."] [-n RUNS] [-s STALE] [-b BINARY]
#
# For each node size of -p (default "100 250 500"), builds a throw-away node namespace holding
# that many pods wired as Calico wires them (veth with the ee MAC, proxy_arp, forwarding, /32
# host route; in the pod the address, 169.254.1.1/32 scope link and the default route), each
# pod in a namespace of its own under /run/netns, all created with `ip -batch`, and one libcni
# result cache entry per pod as containerd writes it (`<dir>/results/<network>-<id>-eth0`,
# kind cniCacheV1, with the pod's K8S_POD_* args; passed with --cni-cache-dir where the binary
# has that flag). Then runs doctor RUNS times (default 10) inside the node namespace and prints
# the median, min and max wall time and the peak RSS; then again with STALE (default 5) stale
# /32 routes on cali links, the path where the node reconciliation re-checks what it found.
# Last, the per-pod cost of each size, to see the growth is linear. Everything is removed on
# exit, Ctrl-C or failure. Not part of the test suite.
set -euo pipefail
SIZES="100 250 500" RUNS=10 STALE=5 BIN=
while getopts "p:n:s:b:" o; do
    case $o in
        p) SIZES=$OPTARG ;; n) RUNS=$OPTARG ;; s) STALE=$OPTARG ;; b) BIN=$OPTARG ;;
        *) sed -n '2,16p' "$0"; exit 2 ;;
    esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
TAG=cpds$$
NODE=$TAG-node
WORK=$(mktemp -d)
PODS=0
teardown() {
    for i in $(seq 1 "$PODS"); do echo "netns del $TAG-p$i"; done | ip -force -batch - 2>/dev/null || true
    ip netns del "$NODE" 2>/dev/null || true
    rm -rf "$WORK/cache" "$WORK/on" "$WORK/off"
}
cleanup() {
    teardown
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [[ -z $BIN ]]; then
    BIN=$(bash "$REPO/deploy/build-static.sh")
fi
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

# Calico's conflist and binaries where the runtime looks, and calico-node's nodename file, so
# the node checks pass too (no kubeconfig: the entry names none).
mkdir -p "$WORK/net.d" "$WORK/bin"
echo node-1 >"$WORK/nodename"
cat >"$WORK/net.d/10-calico.conflist" <<EOC
{"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [
  {"type": "calico", "ipam": {"type": "calico-ipam"}, "nodename_file": "$WORK/nodename"},
  {"type": "calico-preflight"}, {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOC
# The same node with the reconciliation's checks off (the entry's `checks`): its cost alone.
mkdir -p "$WORK/net.d-off"
sed 's/{"type": "calico-preflight"}/{"type": "calico-preflight", "checks": {"stale-host-route": "off", "duplicate-pod-ip": "off"}}/' \
    "$WORK/net.d/10-calico.conflist" >"$WORK/net.d-off/10-calico.conflist"
for b in calico calico-ipam calico-preflight portmap; do printf '#!/bin/sh\nexit 0\n' >"$WORK/bin/$b"; chmod 755 "$WORK/bin/$b"; done
ARGS=(doctor --conf-dir "$WORK/net.d" --cni-bin-dir "$WORK/bin")
# The libcni cache reader may not be in this binary yet: then its entries are written, not read.
if "$BIN" doctor --help 2>&1 | grep -q -- '--cni-cache-dir'; then
    ARGS+=(--cni-cache-dir "$WORK/cache")
    CACHE_READ=yes
else
    CACHE_READ="no (this binary has no --cni-cache-dir)"
fi
NETWORK=k8s-pod-network
CONFIG_B64=$(base64 -w0 "$WORK/net.d/10-calico.conflist")

pod_ip() { echo "10.250.$(($1 / 250)).$(($1 % 250 + 1))"; }

wire() {
    PODS=$1
    ip netns add "$NODE"
    ip -n "$NODE" link set lo up
    # An uplink with a default route: proxy ARP answers for 169.254.1.1 only where the host
    # has a route covering it (host-gateway-route).
    ip -n "$NODE" link add cp-uplink0 type veth peer name cp-uplink1
    ip -n "$NODE" addr add 10.255.255.1/24 dev cp-uplink0
    ip -n "$NODE" link set cp-uplink0 up
    ip -n "$NODE" link set cp-uplink1 up
    ip -n "$NODE" route add default via 10.255.255.254
    nsenter --net="/run/netns/$NODE" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
    for i in $(seq 1 "$PODS"); do echo "netns add $TAG-p$i"; done | ip -batch -
    for i in $(seq 1 "$PODS"); do
        v=$(printf 'cali%011d' "$i")
        echo "link add $v type veth peer name eth0 netns $TAG-p$i"
        echo "link set $v address ee:ee:ee:ee:ee:ee"
        echo "link set $v up"
        echo "route add $(pod_ip "$i")/32 dev $v scope link"
    done | ip -n "$NODE" -batch -
    nsenter --net="/run/netns/$NODE" sh -c \
        'for f in /proc/sys/net/ipv4/conf/cali*/proxy_arp /proc/sys/net/ipv4/conf/cali*/forwarding; do echo 1 > $f; done
         for f in /proc/sys/net/ipv4/neigh/cali*/proxy_delay; do echo 0 > $f; done'
    for i in $(seq 1 "$PODS"); do
        printf 'link set lo up\nlink set eth0 up\naddr add %s/32 dev eth0\nroute add 169.254.1.1/32 dev eth0 scope link\nroute add default via 169.254.1.1 dev eth0\n' \
            "$(pod_ip "$i")" | ip -n "$TAG-p$i" -batch -
    done
    # libcni's result cache, one entry per pod (containernetworking/cni libcni/api.go cacheAdd):
    # the network's config bytes (base64, as Go marshals []byte), the CNI args, the result.
    mkdir -p "$WORK/cache/results"
    for i in $(seq 1 "$PODS"); do
        id=$(printf '%064x' "$i")
        printf '{"kind":"cniCacheV1","containerId":"%s","config":"%s","ifName":"eth0","networkName":"%s","cniArgs":[["K8S_POD_NAMESPACE","bench"],["K8S_POD_NAME","pod-%d"],["K8S_POD_INFRA_CONTAINER_ID","%s"],["K8S_POD_UID","00000000-0000-0000-0000-%012d"]],"capabilityArgs":{},"result":{"cniVersion":"1.0.0","interfaces":[{"name":"%s","mac":"ee:ee:ee:ee:ee:ee"},{"name":"eth0","sandbox":"/run/netns/%s"}],"ips":[{"interface":1,"address":"%s/32"}],"dns":{}}}\n' \
            "$id" "$CONFIG_B64" "$NETWORK" "$i" "$id" "$i" "$(printf 'cali%011d' "$i")" "$TAG-p$i" "$(pod_ip "$i")" \
            >"$WORK/cache/results/$NETWORK-$id-eth0"
    done
}

run() { nsenter --net="/run/netns/$NODE" "$BIN" "${ARGS[@]}" "$@"; }

# One doctor run (extra doctor args: "$@"): "<wall seconds> <peak RSS KiB>". Wall time from
# bash's EPOCHREALTIME around it (GNU time's %e has 10 ms resolution); RSS from GNU time, which
# adds a "Command exited with non-zero status" line first when doctor finds something.
once() {
    local t0 t1
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$WORK/t" nsenter --net="/run/netns/$NODE" "$BIN" "${ARGS[@]}" "$@" >/dev/null || true
    t1=$EPOCHREALTIME
    echo "$t0 $t1 $(tail -1 "$WORK/t")" | awk '{ print $2 - $1, $3 }'
}

# Median, min, max and peak RSS of the runs in file $1.
stats() {
    sort -n "$1" | awk '
        { t[NR] = $1; if ($2 > rss) rss = $2 }
        END { printf "%.3f %.3f %.3f %d\n", t[int((NR + 1) / 2)], t[1], t[NR], rss }'
}

# RUNS runs as configured and, interleaved with them, RUNS with the reconciliation off (a later
# --conf-dir wins) and RUNS without the gateway probe (--no-probe): prints the three stats lines.
measure() {
    rm -f "$WORK/on" "$WORK/off" "$WORK/noprobe"
    for _ in $(seq 1 "$RUNS"); do
        once >>"$WORK/on"
        once --conf-dir "$WORK/net.d-off" >>"$WORK/off"
        once --no-probe >>"$WORK/noprobe"
    done
    stats "$WORK/on"
    stats "$WORK/off"
    stats "$WORK/noprobe"
}

echo "libcni cache entries read: $CACHE_READ" >&2
declare -A MEDIAN
for size in $SIZES; do
    echo "== wiring $size pods and $size cache entries" >&2
    wire "$size"
    summary=$(run | grep '^Summary') || true
    echo "$summary"
    run | grep '^\[WARNING\|^\[ERROR' | grep -v '^\[[A-Z]* [a-z-]*\] pod ' | cut -c1-200 || true
    [[ $summary == "Summary: $size pod(s) on cali* veths: $size healthy"* ]] || {
        echo "unexpected doctor result:" >&2
        run | head -20 >&2 || true
        exit 1
    }
    { read -r med min max rss; read -r omed omin omax orss; read -r pmed pmin pmax prss; } < <(measure)
    MEDIAN[$size]=$med
    printf 'doctor on %d pods + %d cache entries, %d runs: median %.3f s, min %.3f s, max %.3f s, peak RSS %d KiB\n' \
        "$size" "$size" "$RUNS" "$med" "$min" "$max" "$rss"
    printf '  interleaved, reconciliation off: median %.3f s, min %.3f s, max %.3f s, peak RSS %d KiB\n' \
        "$omed" "$omin" "$omax" "$orss"
    printf '  interleaved, --no-probe: median %.3f s, min %.3f s, max %.3f s, peak RSS %d KiB\n' \
        "$pmed" "$pmin" "$pmax" "$prss"
    if ((STALE > 0)); then
        # Stale routes on the first pods' links: IPs no pod holds (10.251.x.y), the re-check path.
        for i in $(seq 1 "$STALE"); do
            echo "route add 10.251.0.$i/32 dev $(printf 'cali%011d' "$i") scope link"
        done | ip -n "$NODE" -batch -
        found=$(run --json | grep -o '"check": *"stale-host-route"' | wc -l) || true
        { read -r smed smin smax srss; read -r _ _ _ _; read -r _ _ _ _; } < <(measure)
        printf '  with %d stale routes (%s stale-host-route findings): median %.3f s, min %.3f s, max %.3f s, peak RSS %d KiB\n' \
            "$STALE" "$found" "$smed" "$smin" "$smax" "$srss"
    fi
    teardown
done
echo "== per pod"
for size in $SIZES; do
    awk -v n="$size" -v t="${MEDIAN[$size]}" 'BEGIN { printf "%4d pods: %.3f s, %.3f ms per pod\n", n, t, 1000 * t / n }'
done
