#!/usr/bin/env bash
# Whole-process ADD latency of calico-preflight against an exec floor and a Go chained plugin.
#
#   sudo bench/run.sh [-n RUNS] [-w WARMUP_ROUNDS] [-p OTHER_PODS] [-b PLUGIN] [-B BASELINE] [-R] [-k] [-H]
#
#   -n  measured runs per case (default 200), interleaved round-robin across cases
#   -w  warm-up rounds discarded before measuring (default 10)
#   -p  other Calico-wired veths (+ /32 routes) on the crowded host (default 1000)
#   -b  benchmark this calico-preflight binary instead of the static build of deploy/build-static.sh
#       (e.g. a build with a candidate patch); the workspace is still built for fake-calico
#   -B  also time this other calico-preflight binary (e.g. the previous commit's static build)
#       as cases base-v4 and base-node-cold, interleaved with the others: an A/B in one run,
#       free of the drift between runs on a shared machine
#   -R  run the timing loop at normal priority (default: SCHED_FIFO 50 via chrt, which keeps
#       other load on a shared machine from preempting the measured processes; the ratios are
#       the same, the spread is much smaller)
#   -k  keep the work dir (stdin files, spec files, raw samples) instead of deleting it
#   -H  hold the namespaces after the report (for profiling a case by hand) until SIGINT/SIGTERM
#
# Everything runs in throw-away network namespaces; nothing touches the machine's own network.
# Namespaces and temp files are removed on exit, Ctrl-C or failure. Not part of the test suite.
set -euo pipefail

RUNS=200
WARM=10
OTHERS=1000
KEEP=0
HOLD=0
ALT=
BASE=
RT=1
while getopts "n:w:p:b:B:RkHh" opt; do
    case $opt in
        n) RUNS=$OPTARG ;;
        w) WARM=$OPTARG ;;
        p) OTHERS=$OPTARG ;;
        b) ALT=$(realpath "$OPTARG") ;;
        B) BASE=$(realpath "$OPTARG") ;;
        R) RT=0 ;;
        k) KEEP=1 ;;
        H) HOLD=1 ;;
        *) sed -n '2,22p' "$0"; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "run.sh: needs root (network namespaces)" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
TAG=cpb$$
WORK=$(mktemp -d /tmp/cpbench.XXXXXX)
NAMESPACES=()
HOLD_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $HOLD_PID ]] && kill "$HOLD_PID" 2>/dev/null
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '== %s\n' "$*" >&2; }

# ---------------------------------------------------------------- tools
need_pkg() { # binary package
    [[ -x $1 ]] && return 0
    log "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}
need_pkg /usr/lib/cni/tuning containernetworking-plugins
need_pkg /usr/bin/time time
need_pkg /usr/bin/gcc gcc
need_pkg /usr/sbin/ip iproute2
need_pkg /usr/bin/nsenter util-linux
TUNING=/usr/lib/cni/tuning

log "cargo build --release --workspace; deploy/build-static.sh (the binary shipped to nodes)"
(cd "$REPO" && cargo build --release --workspace --quiet)
SHIPPED=$(bash "$REPO/deploy/build-static.sh")
# Snapshots: others may rebuild target/ while this runs.
cp "${ALT:-$SHIPPED}" "$WORK/calico-preflight"
cp "$REPO/target/release/fake-calico" "$WORK/fake-calico"
PLUGIN=$WORK/calico-preflight
[[ -n $BASE ]] && cp "$BASE" "$WORK/baseline"
FAKE=$WORK/fake-calico

log "building the no-op floor and the runner into $WORK"
printf 'int main(void) { return 0; }\n' >"$WORK/noop.c"
gcc -O2 -static -o "$WORK/noop" "$WORK/noop.c"
gcc -O2 -static -o "$WORK/rsswrap" "$BENCH/rsswrap.c"
rustc -O --edition 2021 -o "$WORK/runner" "$BENCH/runner.rs"

# ---------------------------------------------------------------- namespaces
mkns() {
    ip netns add "$1"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up
}
nssysctl() { nsenter --net="/run/netns/$1" sh -c "echo $3 > /proc/sys/${2//.//}"; }

# One pod per host namespace, so that the quiet and the crowded host differ only by the others.
HOST=$TAG-host   # quiet host: the IPv4 pod (floor, tuning, cases 3 and 5)
HOST6=$TAG-host6 # the dual-stack pod (case 4)
BUSY=$TAG-busy   # crowded host: case 6
for h in "$HOST" "$HOST6" "$BUSY"; do
    mkns "$h"
    # A node that can run pods forwards (the node checks look for it).
    nssysctl "$h" net.ipv4.ip_forward 1
    nssysctl "$h" net.ipv6.conf.all.forwarding 1
done

# CNI files for the node checks: the conflist libcni would load, and the binaries it names.
mkdir -p "$WORK/net.d" "$WORK/bin" "$WORK/cache" "$WORK/cache-first"
# calico-node's files the node checks read: its nodename file and the kubeconfig install-cni
# writes (a JWT token valid for a year), kept in the work dir and named in Calico's entry.
echo bench-node >"$WORK/nodename"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
JWT="$(printf '{"alg":"RS256","kid":"k"}' | b64url).$(printf '{"exp":%d,"sub":"system:serviceaccount:kube-system:calico-cni-plugin"}' $(($(date +%s) + 31536000)) | b64url).$(printf 'sig' | b64url)"
cat >"$WORK/calico-kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://10.96.0.1:443
    certificate-authority-data: TFMwdExTMUNSVWRKVGc9PQ==
users:
- name: calico
  user:
    token: $JWT
contexts:
- name: calico-context
  context:
    cluster: local
    user: calico
current-context: calico-context
EOF
cat >"$WORK/net.d/10-calico.conflist" <<EOF
{
  "name": "k8s-pod-network",
  "cniVersion": "1.0.0",
  "plugins": [
    { "type": "calico", "ipam": { "type": "calico-ipam" }, "nodename_file": "$WORK/nodename",
      "kubernetes": { "kubeconfig": "$WORK/calico-kubeconfig" } },
    { "type": "calico-preflight", "mode": "enforce" },
    { "type": "tuning" }
  ]
}
EOF
ln -s "$FAKE" "$WORK/bin/calico"
ln -s "$FAKE" "$WORK/bin/calico-ipam"
ln -s "$PLUGIN" "$WORK/bin/calico-preflight"
ln -s "$TUNING" "$WORK/bin/tuning"
CNI_PATH_DIR=$WORK/bin

# Wires a pod the way Calico does (fake-calico, run in the host namespace); prints prevResult.
wire_pod() { # host pod ips-json container-id (the pod netns must exist)
    printf '{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico","ips":%s}' "$3" |
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND=ADD CNI_CONTAINERID="$4" \
            CNI_NETNS="/run/netns/$2" CNI_IFNAME=eth0 CNI_PATH="$CNI_PATH_DIR" \
            CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$4" \
            nsenter --net="/run/netns/$1" "$FAKE"
}

log "wiring pods with fake-calico"
for p in pod4 pod46 podb; do mkns "$TAG-$p"; done
PREV_V4=$(wire_pod "$HOST" "$TAG-pod4" '["10.244.1.5/32"]' bench-v4)
PREV_DUAL=$(wire_pod "$HOST6" "$TAG-pod46" '["10.244.1.6/32","fd00:10::6/128"]' bench-dual)
PREV_BUSY=$(wire_pod "$BUSY" "$TAG-podb" '["10.244.1.5/32"]' bench-busy)

log "wiring $OTHERS other pods' host veths and /32 routes on the crowded host"
PEER_NS=8
for ((k = 0; k < PEER_NS; k++)); do mkns "$TAG-peer$k"; done
: >"$WORK/busy.batch"
for ((k = 0; k < PEER_NS; k++)); do : >"$WORK/peer$k.batch"; done
for ((i = 0; i < OTHERS; i++)); do
    veth=$(printf 'cali%011x' $((0x5eed0000000 + i)))
    k=$((i % PEER_NS))
    printf 'link add %s address ee:ee:ee:ee:ee:ee type veth peer name eth%d netns %s\n' \
        "$veth" "$i" "$TAG-peer$k" >>"$WORK/busy.batch"
    printf 'link set %s up\n' "$veth" >>"$WORK/busy.batch"
    printf 'route add 10.245.%d.%d/32 dev %s scope link\n' $((i / 250)) $((i % 250 + 1)) "$veth" \
        >>"$WORK/busy.batch"
    printf 'link set eth%d up\n' "$i" >>"$WORK/peer$k.batch"
done
if ((OTHERS > 0)); then
    # Peers first into their namespaces (link add), then up them there (carrier on both ends).
    ip -n "$BUSY" -batch "$WORK/busy.batch"
    for ((k = 0; k < PEER_NS; k++)); do
        [[ -s $WORK/peer$k.batch ]] && ip -n "$TAG-peer$k" -batch "$WORK/peer$k.batch"
    done
fi
log "crowded host: $(ip -n "$BUSY" -o link | wc -l) links, $(ip -n "$BUSY" route | wc -l) IPv4 routes"

# ---------------------------------------------------------------- cases
stdin_of() { # file type prevResult extra-keys
    printf '{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"%s"%s,"prevResult":%s}\n' \
        "$2" "$4" "$3" >"$WORK/$1"
}
NODE_KEYS=",\"confDir\":\"$WORK/net.d\",\"nodeChecks\":true"
stdin_of tuning.json tuning "$PREV_V4" ""
stdin_of v4.json calico-preflight "$PREV_V4" ',"nodeChecks":false'
stdin_of dual.json calico-preflight "$PREV_DUAL" ',"nodeChecks":false'
stdin_of cold.json calico-preflight "$PREV_V4" "$NODE_KEYS,\"nodeCheckTtlSeconds\":0"
stdin_of warm.json calico-preflight "$PREV_V4" "$NODE_KEYS,\"cacheDir\":\"$WORK/cache\""
stdin_of busy.json calico-preflight "$PREV_BUSY" ',"nodeChecks":false'
# The active gateway probe on a healthy pod: one ARP request, answered by the host end.
stdin_of probe.json calico-preflight "$PREV_V4" ',"nodeChecks":false,"probe":true'
# The first entry of `--position both` (install's default): no prevResult, the node checks
# only, with the node-check cache cold (TTL 0: every run gathers) and warm.
stdin_first() { # file extra-keys
    printf '{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico-preflight"%s}\n' "$2" >"$WORK/$1"
}
stdin_first first-cold.json ",\"confDir\":\"$WORK/net.d\",\"nodeCheckTtlSeconds\":0"
stdin_first first-warm.json ",\"confDir\":\"$WORK/net.d\",\"cacheDir\":\"$WORK/cache-first\""

spec() { # name host pod exe stdin-file container-id
    cat >"$WORK/$1.spec" <<EOF
name=$1
netns=/run/netns/$2
exe=$4
stdin=$WORK/$5
stderr=$WORK/$1.stderr
env=PATH=/usr/sbin:/usr/bin:/sbin:/bin
env=CNI_COMMAND=ADD
env=CNI_CONTAINERID=$6
env=CNI_NETNS=/run/netns/$3
env=CNI_IFNAME=eth0
env=CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$6
env=CNI_PATH=$CNI_PATH_DIR
EOF
    case $1 in
        floor) ;;
        cp-first-*) echo 'expect="cniVersion"' >>"$WORK/$1.spec" ;; # the empty result
        *) echo 'expect="ips"' >>"$WORK/$1.spec" ;;
    esac
}
spec floor "$HOST" "$TAG-pod4" "$WORK/noop" v4.json bench-v4
spec tuning "$HOST" "$TAG-pod4" "$TUNING" tuning.json bench-v4
spec cp-v4 "$HOST" "$TAG-pod4" "$PLUGIN" v4.json bench-v4
spec cp-dual "$HOST6" "$TAG-pod46" "$PLUGIN" dual.json bench-dual
spec cp-node-cold "$HOST" "$TAG-pod4" "$PLUGIN" cold.json bench-v4
spec cp-node-warm "$HOST" "$TAG-pod4" "$PLUGIN" warm.json bench-v4
spec cp-v4-busy "$BUSY" "$TAG-podb" "$PLUGIN" busy.json bench-busy
spec cp-probe "$HOST" "$TAG-pod4" "$PLUGIN" probe.json bench-v4
spec cp-first-cold "$HOST" "$TAG-pod4" "$PLUGIN" first-cold.json bench-v4
spec cp-first-warm "$HOST" "$TAG-pod4" "$PLUGIN" first-warm.json bench-v4
CASES=(floor tuning cp-v4 cp-dual cp-node-cold cp-node-warm cp-v4-busy cp-first-cold cp-first-warm cp-probe)
if [[ -n $BASE ]]; then
    spec base-v4 "$HOST" "$TAG-pod4" "$WORK/baseline" v4.json bench-v4
    spec base-node-cold "$HOST" "$TAG-pod4" "$WORK/baseline" cold.json bench-v4
    CASES+=(base-v4 base-node-cold)
fi
SPECS=()
for c in "${CASES[@]}"; do SPECS+=("$WORK/$c.spec"); done

# Runs a case once, plainly (nsenter + env -i), stdout to stdout. Used for the sanity pass and
# the GNU time cross-check.
host_of() { case $1 in cp-v4-busy) echo "$BUSY" ;; cp-dual) echo "$HOST6" ;; *) echo "$HOST" ;; esac; }
run_spec() { # case [wrapper...]
    local spec=$WORK/$1.spec c=$1
    shift
    local envs
    mapfile -t envs < <(sed -n 's/^env=//p' "$spec")
    nsenter --net="/run/netns/$(host_of "$c")" "$@" env -i "${envs[@]}" \
        "$(sed -n 's/^exe=//p' "$spec")" <"$(sed -n 's/^stdin=//p' "$spec")"
}
log "sanity: each case once"
for c in "${CASES[@]}"; do
    out=$(run_spec "$c") || { echo "case $c failed: $out" >&2; exit 1; }
    printf '   %-13s exit 0, %s\n' "$c" "$(head -c 90 <<<"${out:-<no output>}")" >&2
done

echo
echo "machine: $(nproc) cores, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
if [[ -n $ALT ]]; then
    echo "plugin:  $ALT (-b)"
else
    echo "plugin:  deploy/build-static.sh output, static ($(stat -c %s "$SHIPPED") bytes; $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?'), tree $(cd "$REPO" && git status --porcelain 2>/dev/null | grep -qv '^?? bench/' && echo dirty || echo clean))"
fi
[[ -n $BASE ]] && echo "baseline: $BASE (-B; $(stat -c %s "$BASE") bytes), cases base-*"
echo "timing:  $([[ $RT == 1 ]] && echo 'runner and children under SCHED_FIFO 50 (chrt)' || echo 'normal priority')"
echo "crowded host: $OTHERS other Calico veths + /32 routes"
echo "load:    $(uptime | sed 's/.*load average/load average/') (at start; other users of the machine)"
echo
PRIO=()
[[ $RT == 1 ]] && PRIO=(chrt -f 50)
"${PRIO[@]}" "$WORK/runner" -n "$RUNS" -w "$WARM" --floor floor --ref tuning \
    --raw "$WORK/raw.tsv" --tsv "$WORK/summary.tsv" "${SPECS[@]}" \
    2> >(sed 's/^/   /' >&2)

# ---------------------------------------------------------------- memory and size
# Peak RSS per process. Not from the runner: its children start by posix_spawn (vfork), and
# ru_maxrss counts the pre-exec address space, i.e. the runner's own ~2 MiB. rsswrap (static C,
# fork + exec + wait4) adds nothing measurable (the static no-op reads the same under GNU time);
# GNU time is the cross-check (env -i runs first, so its own RSS is not counted).
run_spec_inner() { # case prefix...: like run_spec, but the prefix runs after env -i
    local spec=$WORK/$1.spec c=$1
    shift
    local envs
    mapfile -t envs < <(sed -n 's/^env=//p' "$spec")
    nsenter --net="/run/netns/$(host_of "$c")" env -i "${envs[@]}" "$@" \
        "$(sed -n 's/^exe=//p' "$spec")" <"$(sed -n 's/^stdin=//p' "$spec")"
}
echo
echo "peak RSS, KiB (max of 20 runs): rsswrap (fork+exec+wait4 from a static launcher) | GNU time -f %M"
: >"$WORK/rss.txt"
for c in "${CASES[@]}"; do
    a=0 b=0
    for _ in $(seq 20); do
        r=$(run_spec_inner "$c" "$WORK/rsswrap" 3>&1 >/dev/null 2>/dev/null | sed -n 's/^maxrss_kib=\([0-9]*\).*/\1/p')
        ((r > a)) && a=$r
        r=$(run_spec_inner "$c" /usr/bin/time -f %M 2>&1 >/dev/null | tail -1)
        ((r > b)) && b=$r
    done
    printf '   %-13s %6d | %6d\n' "$c" "$a" "$b"
    echo "$c $a $b" >>"$WORK/rss.txt"
done

SIZE=$(stat -c %s "$PLUGIN")
strip -o "$WORK/stripped" "$PLUGIN" 2>/dev/null || cp "$PLUGIN" "$WORK/stripped"
SSIZE=$(stat -c %s "$WORK/stripped")
echo
echo "binary: calico-preflight $SIZE bytes as built, $SSIZE bytes stripped ($(file -b "$PLUGIN" 2>/dev/null | cut -d, -f1-2 || true))"

# ---------------------------------------------------------------- targets
col() { awk -F'\t' -v c="$1" -v k="$2" 'NR==1{for(i=1;i<=NF;i++) h[$i]=i; next} $1==c{print $h[k]}' "$WORK/summary.tsv"; }
verdict() { if awk "BEGIN{exit !($1)}"; then echo MET; else echo MISSED; fi; }
T_EX=$(col tuning excess_us)
echo
echo "targets:"
for c in cp-v4 cp-dual cp-node-cold cp-node-warm cp-v4-busy cp-first-cold cp-first-warm; do
    r=$(col "$c" ratio_to_ref)
    printf '   %-13s excess %7.0f µs = %.3f x tuning excess (%0.f µs)  <= 1/3: %s\n' \
        "$c" "$(col "$c" excess_us)" "$r" "$T_EX" "$(verdict "$r <= 1/3")"
done
r=$(col cp-probe ratio_to_ref)
printf '   %-13s excess %7.0f µs = %.3f x tuning excess (%0.f µs)  <= 1/2: %s\n' \
    cp-probe "$(col cp-probe excess_us)" "$r" "$T_EX" "$(verdict "$r <= 1/2")"
E3=$(col cp-v4 excess_us); E6=$(col cp-v4-busy excess_us)
G=$(awk "BEGIN{printf \"%.1f\", ($E6 / $E3 - 1) * 100}")
printf '   1000 pods     excess %0.f -> %0.f µs: %+.1f%%  <= +20%%: %s\n' "$E3" "$E6" "$G" "$(verdict "$G <= 20")"
RSS=0
for c in cp-v4 cp-dual cp-node-cold cp-node-warm cp-v4-busy cp-first-cold cp-first-warm cp-probe; do
    r=$(awk -v c="$c" '$1==c{print ($2>$3)?$2:$3}' "$WORK/rss.txt"); ((r > RSS)) && RSS=$r
done
printf '   peak RSS      %d KiB (max over the calico-preflight cases, both methods)  <= 4096 KiB: %s\n' \
    "$RSS" "$(verdict "$RSS <= 4096")"
printf '   binary        %d bytes stripped  <= 4 MiB (4194304): %s\n' "$SSIZE" "$(verdict "$SSIZE <= 4194304")"

if [[ $HOLD == 1 ]]; then
    echo "holding: work dir $WORK, namespaces ${NAMESPACES[*]}; kill -TERM $$ to clean up" >&2
    sleep infinity &
    HOLD_PID=$!
    wait "$HOLD_PID" || true
fi
