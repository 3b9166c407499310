//! A CNI plugin that wires a pod exactly as Calico's CNI plugin does
//! (cni-plugin/pkg/dataplane/linux/dataplane_linux.go for the devices, sysctls and routes;
//! cni-plugin/pkg/k8s/k8s.go for which in-pod routes), from its own conflist entry, with knobs to
//! leave out or break each piece. It runs in whatever namespace the runtime (here: the test)
//! runs it in, as the host.
//!
//! Calico's own keys it follows (its entry in the conflist):
//! - `ipam.type`: `calico-ipam` (default) or `host-local`.
//! - calico-ipam: `ipam.assign_ipv4` (default "true"), `ipam.assign_ipv6` (default "false")
//!   decide the families (cni-plugin/pkg/ipamplugin/ipam_plugin.go); the pod gets 10.244.1.5/32
//!   and/or fd00:10::5/128.
//! - host-local: `ipam.ranges` (or the older `ipam.subnet`) give one address per range set, the
//!   5th of its subnet, with host-local's gateway (the 1st, or the range's `gateway`) in the
//!   result and the mask narrowed to /32 or /128 as Calico does in place; `ipam.routes` are the
//!   only in-pod routes ("If any routes are specified in the routes section then only the
//!   specified routes are programmed"), their `gw` ignored, unless `include_default_routes`
//!   adds 0.0.0.0/0 and ::/0 too. host-local copies `ipam.routes` into its result, so they are
//!   in the result's `routes`.
//! - `device_type: "netkit"`: tried, and like Calico falls back to a veth when the kernel does
//!   not know netkit (these test kernels do not).
//! - `container_settings.allow_ip_forwarding`: the pod's own forwarding sysctls.
//!
//! Fixture knobs (also in its entry):
//! - `ips`: the pod's addresses, e.g. ["10.244.1.5/32", "fd00:10::5/128"]; overrides IPAM.
//! - `shape`: "v3.30" (interfaces = [host veth], IPs without index), "v3.31" (default:
//!   [host veth, pod interface], every IP at its index) or "v3.32" (as v3.31, plus calico-ipam's
//!   one `{dst: <podIP>/32|/128}` per IP in `routes`).
//! - `hostVeth`: the host end's name (default: prefix + 11 hex chars of the container id's hash).
//! - `interfacePrefix`: the host end's prefix, as FELIX_INTERFACEPREFIX (the first of a comma
//!   list; the variable itself is honoured too); default `cali`.
//! - `extraHostInterface`: "ifb" or "veth": another host interface `bwp…`, as the bandwidth
//!   plugin's ifb, created in the host and listed *first* among the result's interfaces (what a
//!   plugin before us or multus may leave).
//! - `podDefaultRoute6`: "ecmp": the pod's ::/0 becomes a multipath route, Calico's next hop plus
//!   one via a second pod interface `net1` (multus-style). Calico never programs this itself.
//! - `nexthopObjects`: true: the pod's default routes point at nexthop objects (`nhid`, kernel
//!   5.3+) with the same next hops. Calico never programs these either.
//! - `break`: list of faults, see `add` (and `no-route:<dst>`: that in-pod route is left out).
//!   `no-host-gateway`: the host is not given the uplink below.
//!
//! A node always has a route covering 169.254.1.1 (a default route), or proxy ARP never answers
//! for the pod's gateway; a test's host namespace has none. So before wiring, unless the host
//! already has one, it is given a stand-in uplink: a veth pair `cp-uplink0`/`cp-uplink1`, MTU
//! 1500, 10.255.255.1/24 and `default via 10.255.255.254`. Real Calico never adds this.
//!
//! It uses iproute2 so that every step reads like the `ip` command an operator would run;
//! the plugin under test reads the result through netlink.

use serde_json::{json, Value};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{exit, Command};

fn main() {
    let cmd = std::env::var("CNI_COMMAND").unwrap_or_default();
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        fail("cannot read stdin");
    }
    if cmd == "VERSION" && input.trim().is_empty() {
        input = "{}".into();
    }
    let conf: Value =
        serde_json::from_str(&input).unwrap_or_else(|e| fail(&format!("bad config: {e}")));
    let version = conf["cniVersion"].as_str().unwrap_or("1.0.0").to_string();
    match cmd.as_str() {
        "VERSION" => println!(
            "{}",
            json!({"cniVersion": version, "supportedVersions": ["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})
        ),
        "ADD" => add(&conf, &version),
        "DEL" => {
            // Deleting the host end removes the pair; absent is fine (DEL is idempotent).
            let veth = host_veth_name(&conf);
            let _ = Command::new("ip").args(["link", "del", &veth]).output();
            if conf["extraHostInterface"].is_string() {
                let _ = Command::new("ip")
                    .args(["link", "del", &extra_name(&conf)])
                    .output();
            }
        }
        // CHECK, STATUS, GC: nothing to verify or collect in a fixture.
        _ => {}
    }
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| fail(&format!("{k} not set")))
}

fn fail(msg: &str) -> ! {
    println!(
        "{}",
        json!({"cniVersion":"1.0.0","code":999,"msg":format!("fake-calico: {msg}")})
    );
    exit(1)
}

/// A stable 48-bit hash of the container id (Calico hashes namespace.pod with sha1; any stable
/// name will do for a fixture).
fn id_hash() -> u64 {
    let id = std::env::var("CNI_CONTAINERID").unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    h & 0xffff_ffff_ffff
}

fn host_veth_name(conf: &Value) -> String {
    if let Some(n) = conf["hostVeth"].as_str() {
        return n.to_string();
    }
    // libcalico-go/lib/backend/k8s/conversion/workload_endpoint_default.go VethNameForWorkload:
    // the first of FELIX_INTERFACEPREFIX's comma list, default "cali", then 11 hex chars.
    let from_env = std::env::var("FELIX_INTERFACEPREFIX").unwrap_or_default();
    let list = conf["interfacePrefix"]
        .as_str()
        .map(String::from)
        .unwrap_or(from_env);
    let prefix = match list.split(',').next() {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => "cali".to_string(),
    };
    format!("{prefix}{:011x}", id_hash() & 0xfff_ffff_ffff)
}

/// The bandwidth plugin names its ifb `bwp` + a hash of the container id, 15 chars in all
/// (plugins/meta/bandwidth/main.go `utils.MustFormatHashWithPrefix(maxIfbDeviceLength, "bwp", ...)`).
/// A veth needs room for its peer's name (+ "p"), so that variant is one char shorter.
fn extra_name(conf: &Value) -> String {
    let h = id_hash();
    if conf["extraHostInterface"].as_str() == Some("veth") {
        format!("bwp{:011x}", h & 0xfff_ffff_ffff)
    } else {
        format!("bwp{:012x}", h)
    }
}

/// `ip` in the pod's namespace (a path, as CNI_NETNS is) or in our own; stdout on success.
fn try_ip(netns: Option<&str>, args: &[&str]) -> Result<String, String> {
    let out = match netns {
        Some(ns) => Command::new("nsenter")
            .arg(format!("--net={ns}"))
            .arg("ip")
            .args(args)
            .output(),
        None => Command::new("ip").args(args).output(),
    };
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("ip: {e}")),
    }
}

/// The stand-in uplink (see the header). Each step may race another fake-calico in the same
/// host, so each is tried and its "exists" ignored; the result is checked at the end.
fn host_uplink() {
    if try_ip(None, &["route", "get", "169.254.1.1"]).is_ok() {
        return;
    }
    let steps: &[&[&str]] = &[
        &[
            "link",
            "add",
            "cp-uplink0",
            "mtu",
            "1500",
            "type",
            "veth",
            "peer",
            "name",
            "cp-uplink1",
        ],
        &["link", "set", "cp-uplink1", "up"],
        &["link", "set", "cp-uplink0", "up"],
        &["addr", "add", "10.255.255.1/24", "dev", "cp-uplink0"],
        &[
            "route",
            "add",
            "default",
            "via",
            "10.255.255.254",
            "dev",
            "cp-uplink0",
        ],
    ];
    for step in steps {
        let _ = try_ip(None, step);
    }
    if let Err(e) = try_ip(None, &["route", "get", "169.254.1.1"]) {
        fail(&format!("could not give the host an uplink: {e}"));
    }
}

fn ip(netns: Option<&str>, args: &[&str]) {
    if let Err(e) = try_ip(netns, args) {
        fail(&e)
    }
}

fn link_mac(netns: Option<&str>, ifname: &str) -> String {
    let out = try_ip(netns, &["-j", "link", "show", ifname]).unwrap_or_default();
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v[0]["address"].as_str().unwrap_or_default().to_string()
}

/// The EUI-64 link-local address the kernel derives from a MAC (addr_gen_mode eui64): what the
/// host end's link-local is once it is up, and what Calico reads back as the IPv6 next hop.
fn eui64_link_local(mac: &str) -> Option<Ipv6Addr> {
    let b: Vec<u8> = mac
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    if b.len() != 6 {
        return None;
    }
    let w = |hi: u8, lo: u8| (u16::from(hi) << 8) | u16::from(lo);
    Some(Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        w(b[0] ^ 0x02, b[1]),
        w(b[2], 0xff),
        w(0xfe, b[3]),
        w(b[4], b[5]),
    ))
}

/// Writes a sysctl; `Err` when it cannot (Calico fails on some and only warns on others).
fn try_sysctl(netns: Option<&str>, key: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let script = format!("echo {value} > {path}");
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={ns}")).args(["sh", "-c", &script]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        }
    };
    match c.output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(format!("cannot set {key}={value}")),
    }
}

fn sysctl(netns: Option<&str>, key: &str, value: &str) {
    if let Err(e) = try_sysctl(netns, key, value) {
        fail(&e)
    }
}

/// One address of the pod, as it appears in the result.
struct PodIp {
    /// With Calico's mask: /32 or /128.
    address: String,
    gateway: Option<String>,
}

impl PodIp {
    fn v6(&self) -> bool {
        self.address.contains(':')
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `a.b.c.d/n` or `x::/n` → (network address, prefix length).
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, n) = s.split_once('/')?;
    Some((a.parse().ok()?, n.parse().ok()?))
}

/// The `n`th address of a subnet.
fn nth(net: IpAddr, n: u32) -> IpAddr {
    match net {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(n))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(u128::from(n)))),
    }
}

/// Calico replaces `usePodCidr` with the node's podCIDR from the API server; a fixture node has
/// this one (cni-plugin/internal/pkg/utils/utils.go ReplaceHostLocalIPAMPodCIDRs).
fn pod_cidr(subnet: &str) -> &str {
    match subnet {
        "usePodCidr" => "10.244.1.0/24",
        "usePodCidrIPv6" => "fd00:10::/64",
        s => s,
    }
}

fn host_local_ips(ipam: &Value) -> Vec<PodIp> {
    let mut sets: Vec<Value> = ipam["ranges"].as_array().cloned().unwrap_or_default();
    if sets.is_empty() && ipam["subnet"].is_string() {
        sets.push(json!([{"subnet": ipam["subnet"], "gateway": ipam["gateway"]}]));
    }
    let mut out = Vec::new();
    for set in &sets {
        let Some(range) = set.as_array().and_then(|r| r.first()) else {
            fail("host-local: a range set is empty")
        };
        let subnet = pod_cidr(range["subnet"].as_str().unwrap_or_default());
        let Some((net, _)) = parse_cidr(subnet) else {
            fail(&format!("host-local: bad subnet {subnet:?}"))
        };
        let addr = nth(net, 5);
        let gw = range["gateway"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| nth(net, 1).to_string());
        let len = if addr.is_ipv6() { 128 } else { 32 };
        out.push(PodIp {
            address: format!("{addr}/{len}"),
            gateway: Some(gw),
        });
    }
    if out.is_empty() {
        fail("host-local: no ranges or subnet in ipam");
    }
    out
}

fn calico_ipam_ips(ipam: &Value) -> Vec<PodIp> {
    let mut out = Vec::new();
    if ipam["assign_ipv4"].as_str() != Some("false") {
        out.push(PodIp {
            address: "10.244.1.5/32".into(),
            gateway: None,
        });
    }
    if ipam["assign_ipv6"].as_str() == Some("true") {
        out.push(PodIp {
            address: "fd00:10::5/128".into(),
            gateway: None,
        });
    }
    if out.is_empty() {
        fail("calico-ipam: neither assign_ipv4 nor assign_ipv6");
    }
    out
}

fn add(conf: &Value, version: &str) {
    let netns = env("CNI_NETNS");
    let ifname = env("CNI_IFNAME");
    let pod = Some(netns.as_str());
    let faults = strings(&conf["break"]);
    let broken = |f: &str| faults.iter().any(|x| x == f);
    let route_left_out = |dst: &str| {
        faults
            .iter()
            .any(|x| x.strip_prefix("no-route:") == Some(dst))
    };
    if !broken("no-host-gateway") {
        host_uplink();
    }
    let ipam = &conf["ipam"];
    let host_local = ipam["type"].as_str() == Some("host-local");
    let ips: Vec<PodIp> = if conf["ips"].is_array() {
        strings(&conf["ips"])
            .into_iter()
            .map(|address| PodIp {
                address,
                gateway: None,
            })
            .collect()
    } else if host_local {
        host_local_ips(ipam)
    } else {
        calico_ipam_ips(ipam)
    };
    let has4 = ips.iter().any(|i| !i.v6());
    let has6 = ips.iter().any(PodIp::v6);
    let veth = host_veth_name(conf);

    // k8s.go: host-local's `ipam.routes` (dst only) replace the defaults, unless
    // include_default_routes asks for both.
    let custom: Vec<String> = if host_local {
        ipam["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["dst"].as_str().map(String::from))
            .collect()
    } else {
        vec![]
    };
    let defaults = vec!["0.0.0.0/0".to_string(), "::/0".to_string()];
    let routes: Vec<String> = if custom.is_empty() {
        defaults
    } else if conf["include_default_routes"].as_bool() == Some(true) {
        defaults.into_iter().chain(custom).collect()
    } else {
        custom
    };

    // The pair is created in the pod's namespace, both ends named, then the host end moves
    // out. netkit is tried first when asked for; like Calico (addWorkloadLink) we fall back to a
    // veth when the kernel does not know the kind.
    let netkit = conf["device_type"].as_str() == Some("netkit")
        && try_ip(
            pod,
            &[
                "link", "add", &veth, "type", "netkit", "mode", "l2", "peer", "name", &ifname,
            ],
        )
        .is_ok();
    if !netkit {
        ip(
            pod,
            &[
                "link", "add", &ifname, "type", "veth", "peer", "name", &veth,
            ],
        );
    }
    if !broken("no-host-mac") {
        ip(pod, &["link", "set", &veth, "address", "ee:ee:ee:ee:ee:ee"]);
    }
    let host_mac = link_mac(pod, &veth);
    if has6 {
        // disableDAD: before the links go up.
        sysctl(pod, &format!("net.ipv6.conf.{ifname}.accept_dad"), "0");
    }
    ip(pod, &["link", "set", &ifname, "up"]);
    if has4 {
        if !broken("no-gateway-route") {
            ip(
                pod,
                &[
                    "route",
                    "add",
                    "169.254.1.1/32",
                    "dev",
                    &ifname,
                    "scope",
                    "link",
                ],
            );
        }
        for r in routes.iter().filter(|r| !r.contains(':')) {
            let default = r == "0.0.0.0/0";
            if route_left_out(r)
                || broken("no-gateway-route")
                || (default && broken("no-default-route"))
            {
                continue;
            }
            if default && broken("wrong-default-route") {
                ip(
                    pod,
                    &[
                        "route",
                        "add",
                        "169.254.9.9/32",
                        "dev",
                        &ifname,
                        "scope",
                        "link",
                    ],
                );
                ip(
                    pod,
                    &["route", "add", r, "via", "169.254.9.9", "dev", &ifname],
                );
                continue;
            }
            ip(
                pod,
                &["route", "add", r, "via", "169.254.1.1", "dev", &ifname],
            );
        }
    }
    // The host end's link-local (from its MAC, as the kernel derives it once the end is up in
    // the host) is the pod's IPv6 next hop: Calico reads it back from the host end.
    let host_ll = eui64_link_local(&host_mac).map(|a| a.to_string());
    if has6 {
        // Make sure IPv6 is on in the pod (Calico writes these three).
        for k in ["all", "default", "lo"] {
            sysctl(pod, &format!("net.ipv6.conf.{k}.disable_ipv6"), "0");
        }
        let Some(ll) = host_ll.as_deref() else {
            fail(&format!("no MAC on {veth}"))
        };
        for r in routes.iter().filter(|r| r.contains(':')) {
            if route_left_out(r) || (r == "::/0" && broken("no-default-route6")) {
                continue;
            }
            ip(pod, &["-6", "route", "add", r, "via", ll, "dev", &ifname]);
        }
    }
    for a in &ips {
        if broken("no-pod-ip") {
            break;
        }
        ip(pod, &["addr", "add", &a.address, "dev", &ifname]);
    }
    // configureContainerSysctls: the pod's own forwarding, per family.
    let fwd = if conf["container_settings"]["allow_ip_forwarding"].as_bool() == Some(true) {
        "1"
    } else {
        "0"
    };
    if has4 {
        sysctl(pod, "net.ipv4.ip_forward", fwd);
    }
    if has6 {
        sysctl(pod, "net.ipv6.conf.all.forwarding", fwd);
    }
    if has6 && conf["podDefaultRoute6"].as_str() == Some("ecmp") {
        ecmp_default6(
            pod,
            &ifname,
            host_ll.as_deref(),
            broken("ecmp-wrong-nexthops"),
        );
    }
    let mac = link_mac(pod, &ifname);
    // `netns <PID>`: into the namespace this plugin runs in, the "host".
    ip(
        pod,
        &[
            "link",
            "set",
            &veth,
            "netns",
            &std::process::id().to_string(),
        ],
    );

    // Host side (configureSysctls): sysctls per family, then up, then routes. A fault leaves
    // its setting at 0.
    let unless = |fault: &str| if broken(fault) { "0" } else { "1" };
    let mut host_sysctls = Vec::new();
    if has4 {
        host_sysctls.extend([
            (format!("net.ipv4.conf.{veth}.route_localnet"), "1"),
            (format!("net.ipv4.neigh.{veth}.proxy_delay"), "0"),
            (
                format!("net.ipv4.conf.{veth}.proxy_arp"),
                unless("no-proxy-arp"),
            ),
            (
                format!("net.ipv4.conf.{veth}.forwarding"),
                unless("no-forwarding"),
            ),
        ]);
    }
    if has6 {
        host_sysctls.extend([
            (format!("net.ipv6.conf.{veth}.accept_dad"), "0"),
            (format!("net.ipv6.conf.{veth}.disable_ipv6"), "0"),
            (
                format!("net.ipv6.conf.{veth}.proxy_ndp"),
                unless("no-proxy-arp"),
            ),
            (
                format!("net.ipv6.conf.{veth}.forwarding"),
                unless("no-forwarding"),
            ),
        ]);
    }
    for (key, value) in &host_sysctls {
        sysctl(None, key, value);
    }
    // Calico only warns when this one fails (IPv6 disabled on the node).
    let _ = try_sysctl(None, &format!("net.ipv6.conf.{veth}.accept_ra"), "0");
    ip(None, &["link", "set", &veth, "up"]);
    for a in &ips {
        if broken("no-host-route") {
            break;
        }
        if broken("conflict-route") {
            // A stale route from an earlier pod holds the IP on another interface.
            // (A veth: this kernel may lack the dummy module.)
            ip(
                None,
                &[
                    "link", "add", "stale0", "type", "veth", "peer", "name", "stale0p",
                ],
            );
            ip(None, &["link", "set", "stale0", "up"]);
            ip(
                None,
                &["route", "add", &a.address, "dev", "stale0", "scope", "link"],
            );
            break;
        }
        ip(
            None,
            &["route", "add", &a.address, "dev", &veth, "scope", "link"],
        );
    }
    if conf["nexthopObjects"].as_bool() == Some(true) {
        // Only now: a nexthop object wants its device's carrier, which the pod interface has
        // once the host end is up.
        nexthop_objects(pod, &ifname, &routes, has4, has6);
    }
    if broken("conflict-address") {
        let first = ips
            .first()
            .map(|a| a.address.as_str())
            .unwrap_or("10.244.1.5/32");
        ip(
            None,
            &[
                "link", "add", "dup0", "type", "veth", "peer", "name", "dup0p",
            ],
        );
        ip(None, &["link", "set", "dup0", "up"]);
        ip(None, &["addr", "add", first, "dev", "dup0"]);
    }
    if broken("host-veth-down") {
        ip(None, &["link", "set", &veth, "down"]);
    }
    if broken("pod-if-down") {
        // Something downed the pod interface after wiring (the kernel drops its routes too).
        ip(pod, &["link", "set", &ifname, "down"]);
    }
    if broken("delete-host-veth") {
        ip(None, &["link", "del", &veth]);
    }
    let extra = conf["extraHostInterface"].as_str().map(|kind| {
        let name = extra_name(conf);
        match kind {
            "veth" => ip(
                None,
                &[
                    "link",
                    "add",
                    &name,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &format!("{name}p"),
                ],
            ),
            "ifb" => ip(None, &["link", "add", &name, "type", "ifb"]),
            other => fail(&format!("extraHostInterface {other:?}: ifb or veth")),
        }
        ip(None, &["link", "set", &name, "up"]);
        json!({"name": name, "mac": link_mac(None, &name)})
    });

    let reported_veth = if broken("wrong-host-veth-name") {
        "cali00000000000".to_string()
    } else {
        veth
    };
    let shape = conf["shape"].as_str().unwrap_or("v3.31");
    let old_shape = shape == "v3.30";
    let mut interfaces: Vec<Value> = extra.into_iter().collect();
    interfaces.push(json!({"name": reported_veth}));
    let pod_index = interfaces.len();
    if !old_shape {
        interfaces.push(json!({"name": ifname, "mac": mac, "sandbox": netns}));
    }
    let ip_entries: Vec<Value> = ips
        .iter()
        .map(|a| {
            let mut e = json!({"address": a.address});
            if let Some(g) = &a.gateway {
                e["gateway"] = json!(g);
            }
            if !old_shape {
                e["interface"] = json!(pod_index);
            }
            if version.starts_with("0.") {
                e["version"] = json!(if a.v6() { "6" } else { "4" });
            }
            e
        })
        .collect();
    let mut result =
        json!({"cniVersion": version, "interfaces": interfaces, "ips": ip_entries, "dns": {}});
    if host_local {
        // host-local returns its configured routes as they are written (gw included).
        if let Some(r) = ipam["routes"].as_array().filter(|r| !r.is_empty()) {
            result["routes"] = json!(r);
        }
    } else if shape == "v3.32" {
        // ipam_plugin.go: "one route per IP for normal pods".
        let per_ip: Vec<Value> = ips.iter().map(|a| json!({"dst": a.address})).collect();
        result["routes"] = json!(per_ip);
    }
    println!("{result}");
}

/// Replaces the pod's ::/0 with a multipath route: Calico's next hop on `ifname` and one via a
/// second pod interface `net1` (a veth whose peer stays in the pod, as a multus network's would
/// be elsewhere). Calico never programs this: it is a fixture step for pods whose default route
/// something else turned into ECMP (a second network, a routing daemon), which the kernel
/// reports as RTA_MULTIPATH with no top-level gateway or oif. `wrong`: neither next hop is
/// Calico's.
fn ecmp_default6(pod: Option<&str>, ifname: &str, host_ll: Option<&str>, wrong: bool) {
    ip(
        pod,
        &[
            "link", "add", "net1", "type", "veth", "peer", "name", "net1p",
        ],
    );
    for i in ["net1", "net1p"] {
        sysctl(pod, &format!("net.ipv6.conf.{i}.accept_dad"), "0");
        ip(pod, &["link", "set", i, "up"]);
    }
    let calico_hop = if wrong {
        "fe80::2"
    } else {
        host_ll.unwrap_or_else(|| fail("no host link-local for the ECMP route"))
    };
    ip(
        pod,
        &[
            "-6", "route", "replace", "::/0", "nexthop", "via", calico_hop, "dev", ifname,
            "nexthop", "via", "fe80::1", "dev", "net1",
        ],
    );
}

/// Moves the pod's default routes that Calico installed onto nexthop objects with the same
/// gateway (`ip nexthop add id N via GW dev IF; ip route replace DEFAULT nhid N`). A fixture
/// step, not Calico's: routing daemons program routes so, and the kernel then reports RTA_NH_ID
/// (plus, with nexthop_compat_mode=1, the gateway and oif as before).
fn nexthop_objects(pod: Option<&str>, ifname: &str, routes: &[String], has4: bool, has6: bool) {
    let present = |dst: &str| routes.iter().any(|r| r == dst);
    let v4_default =
        || try_ip(pod, &["-4", "route", "show", "default"]).is_ok_and(|o| !o.trim().is_empty());
    if has4 && present("0.0.0.0/0") && v4_default() {
        ip(
            pod,
            &[
                "nexthop",
                "add",
                "id",
                "41",
                "via",
                "169.254.1.1",
                "dev",
                ifname,
            ],
        );
        ip(pod, &["route", "replace", "0.0.0.0/0", "nhid", "41"]);
    }
    if has6 && present("::/0") {
        let out = try_ip(pod, &["-6", "-j", "route", "show", "default"]).unwrap_or_default();
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        if let Some(gw) = v[0]["gateway"].as_str() {
            ip(
                pod,
                &["nexthop", "add", "id", "61", "via", gw, "dev", ifname],
            );
            ip(pod, &["-6", "route", "replace", "::/0", "nhid", "61"]);
        }
    }
}
