//! A CNI plugin that wires a pod exactly as Calico's CNI plugin does
//! (cni-plugin/pkg/dataplane/linux/dataplane_linux.go), with knobs to leave out or break each
//! piece. It runs in whatever namespace the runtime (here: the test) runs it in, as the host.
//!
//! Config keys (its entry in the conflist):
//! - `ips`: the pod's addresses, e.g. ["10.244.1.5/32", "fd00:10::5/128"]
//! - `shape`: "v3.30" (interfaces = [host veth], IPs without index) or "v3.31" (default:
//!   [host veth, pod interface], every IP at index 1)
//! - `hostVeth`: the host end's name (default: cali + 11 hex chars of the container id's hash)
//! - `break`: list of faults, see `Fault`.
//!
//! It uses iproute2 so that every step reads like the `ip` command an operator would run;
//! the plugin under test reads the result through netlink.

use serde_json::{json, Value};
use std::io::Read;
use std::process::{exit, Command};

fn main() {
    let cmd = std::env::var("CNI_COMMAND").unwrap_or_default();
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        fail("cannot read stdin");
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
        }
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

fn host_veth_name(conf: &Value) -> String {
    if let Some(n) = conf["hostVeth"].as_str() {
        return n.to_string();
    }
    // Calico hashes namespace.pod; any stable 11 hex chars will do for a fixture.
    let id = std::env::var("CNI_CONTAINERID").unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("cali{:011x}", h & 0xfff_ffff_ffff)
}

/// `ip` in the pod's namespace (a path, as CNI_NETNS is) or in our own.
fn ip(netns: Option<&str>, args: &[&str]) {
    let out = match netns {
        Some(ns) => Command::new("nsenter")
            .arg(format!("--net={ns}"))
            .arg("ip")
            .args(args)
            .output(),
        None => Command::new("ip").args(args).output(),
    };
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => fail(&format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => fail(&format!("ip: {e}")),
    }
}

fn pod_mac(netns: &str, ifname: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["ip", "-j", "link", "show", ifname])
        .output();
    let Ok(o) = out else { return String::new() };
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    v[0]["address"].as_str().unwrap_or_default().to_string()
}

fn sysctl(netns: Option<&str>, key: &str, value: &str) {
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
        Ok(o) if o.status.success() => {}
        _ => fail(&format!("cannot set {key}={value}")),
    }
}

fn add(conf: &Value, version: &str) {
    let netns = env("CNI_NETNS");
    let ifname = env("CNI_IFNAME");
    let pod = Some(netns.as_str());
    let faults: Vec<String> = conf["break"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let broken = |f: &str| faults.iter().any(|x| x == f);
    let ips: Vec<String> = conf["ips"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_else(|| vec!["10.244.1.5/32".into()]);
    let has4 = ips.iter().any(|i| !i.contains(':'));
    let has6 = ips.iter().any(|i| i.contains(':'));
    let veth = host_veth_name(conf);

    // The veth is created in the pod's namespace, both ends named, then the host end moves out.
    ip(
        pod,
        &[
            "link", "add", &ifname, "type", "veth", "peer", "name", &veth,
        ],
    );
    if !broken("no-host-mac") {
        ip(pod, &["link", "set", &veth, "address", "ee:ee:ee:ee:ee:ee"]);
    }
    if has6 {
        sysctl(pod, &format!("net.ipv6.conf.{ifname}.accept_dad"), "0");
        sysctl(pod, &format!("net.ipv6.conf.{veth}.accept_dad"), "0");
    }
    ip(pod, &["link", "set", &veth, "up"]);
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
        if !broken("no-default-route")
            && !broken("no-gateway-route")
            && !broken("wrong-default-route")
        {
            ip(
                pod,
                &[
                    "route",
                    "add",
                    "default",
                    "via",
                    "169.254.1.1",
                    "dev",
                    &ifname,
                ],
            );
        }
        if broken("wrong-default-route") {
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
                &[
                    "route",
                    "add",
                    "default",
                    "via",
                    "169.254.9.9",
                    "dev",
                    &ifname,
                ],
            );
        }
    }
    if has6 && !broken("no-default-route6") {
        // The host end's link-local, derived from its ee MAC (EUI-64), is the pod's IPv6 next hop.
        let ll = if broken("no-host-mac") {
            None
        } else {
            Some("fe80::ecee:eeff:feee:eeee")
        };
        if let Some(ll) = ll {
            ip(
                pod,
                &["-6", "route", "add", "default", "via", ll, "dev", &ifname],
            );
        }
    }
    for a in &ips {
        if broken("no-pod-ip") {
            break;
        }
        ip(pod, &["addr", "add", a, "dev", &ifname]);
    }
    let mac = pod_mac(&netns, &ifname);
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

    // Host side: sysctls, up, routes. A fault leaves its setting at 0.
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
    ip(None, &["link", "set", &veth, "up"]);
    for a in &ips {
        if broken("no-host-route") {
            break;
        }
        let host = a.split('/').next().unwrap_or(a);
        let full = if a.contains(':') {
            format!("{host}/128")
        } else {
            format!("{host}/32")
        };
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
                &["route", "add", &full, "dev", "stale0", "scope", "link"],
            );
            break;
        }
        ip(
            None,
            &["route", "add", &full, "dev", &veth, "scope", "link"],
        );
    }
    if broken("conflict-address") {
        let first = ips.first().map(String::as_str).unwrap_or("10.244.1.5/32");
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

    let reported_veth = if broken("wrong-host-veth-name") {
        "cali00000000000".to_string()
    } else {
        veth
    };
    let old_shape = conf["shape"].as_str() == Some("v3.30");
    let mut interfaces = vec![json!({"name": reported_veth})];
    if !old_shape {
        interfaces.push(json!({"name": ifname, "mac": mac, "sandbox": netns}));
    }
    let ip_entries: Vec<Value> = ips
        .iter()
        .map(|a| {
            let mut e = json!({"address": a});
            if !old_shape {
                e["interface"] = json!(1);
            }
            if version.starts_with("0.") {
                e["version"] = json!(if a.contains(':') { "6" } else { "4" });
            }
            e
        })
        .collect();
    println!(
        "{}",
        json!({"cniVersion": version, "interfaces": interfaces, "ips": ip_entries, "dns": {}})
    );
}
