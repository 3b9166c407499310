//! The active gateway probe (`pod-gateway-probe`) in real namespaces wired as Calico does: it
//! passes on healthy wiring (IPv4, IPv6, dual stack) and fails, naming the cause, on each fault
//! that stops the host end from answering, with the config check that would also see the
//! fault turned off, so that the probe alone is shown to catch it.

use calico_preflight_integration::*;
use serde_json::{json, Value};

const V4: &[&str] = &["10.244.3.5/32"];
const V6: &[&str] = &["fd00:33::5/128"];
const DUAL: &[&str] = &["10.244.3.5/32", "fd00:33::5/128"];

struct Pod {
    host: Netns,
    pod: Netns,
    env: CniEnv,
    prev: Value,
}

/// A host and a pod wired by fake-calico; `faults` as fake-calico's `break`.
fn wired(version: &str, ips: &[&str], faults: &[&str]) -> Pod {
    let host = Netns::new("pr-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    host.sysctl("net.ipv6.conf.all.forwarding", "1");
    let pod = Netns::new("pr-p");
    let env = CniEnv::new("ADD", &pod.path(), "eth0");
    let prev = wire_pod(
        &host,
        &env,
        json!({"cniVersion": version, "ips": ips, "break": faults}),
    );
    Pod {
        host,
        pod,
        env,
        prev,
    }
}

fn preflight(p: &Pod, command: &str, version: &str, extra: Value) -> PluginRun {
    let mut c = json!({"cniVersion": version, "name": "k8s-pod-network", "type": "calico-preflight",
        "confDir": format!("/nonexistent/cp-pr-{}", p.host.name), "prevResult": p.prev});
    for (k, v) in extra.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    run_plugin(
        Some(&p.host),
        &bin("calico-preflight"),
        &p.env.with_command(command).vars(),
        c.to_string().as_bytes(),
    )
}

fn host_veth(p: &Pod) -> String {
    p.prev["interfaces"][0]["name"]
        .as_str()
        .expect("host veth in result")
        .to_string()
}

fn has_check(version: &str) -> bool {
    version != "0.3.0" && version != "0.3.1"
}

/// The probe's error: the check id first, what was sent and what came back, and `cause`.
fn assert_probe_fails(run: &PluginRun, version: &str, cause: &str, ctx: &str) {
    assert_eq!(run.status, 1, "{ctx}: {run:?}");
    let e = run.json();
    assert_eq!(e["cniVersion"], version, "{ctx}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("calico-preflight: pod-gateway-probe: "),
        "{ctx}: msg {msg}"
    );
    let details = e["details"].as_str().unwrap_or_default();
    assert!(
        details.contains("[ERROR pod-gateway-probe]"),
        "{ctx}: {details}"
    );
    // Nothing else is at error: the probe alone caught it.
    assert_eq!(details.matches("[ERROR ").count(), 1, "{ctx}: {details}");
    assert!(details.contains("Found: sent "), "{ctx}: {details}");
    assert!(details.contains("came back: nothing"), "{ctx}: {details}");
    assert!(
        details.contains(cause),
        "{ctx}: cause {cause:?} in {details}"
    );
}

#[test]
fn healthy_wiring_is_answered_for_every_family_and_version() {
    for version in VERSIONS {
        for ips in [V4, V6, DUAL] {
            let p = wired(version, ips, &[]);
            let ctx = format!("{version} {ips:?}");
            let pod_neigh_before = p.pod.ip(&["neigh", "show"]);
            let run = preflight(&p, "ADD", version, json!({"probe": true}));
            assert_eq!(run.status, 0, "{ctx}: {run:?}");
            assert_eq!(run.stdout.trim(), p.prev.to_string(), "{ctx}");
            if has_check(version) {
                let c = preflight(&p, "CHECK", version, json!({"probe": true}));
                assert_eq!((c.status, c.stdout.as_str()), (0, ""), "CHECK {ctx}: {c:?}");
            }
            // The probe ran: the host learnt the pod's IPv4 neighbour entry on the host end
            // (IPv6: nothing, see below), and the pod's own neighbour table is as it was.
            let veth = host_veth(&p);
            let host_neigh = p.host.ip(&["neigh", "show", "dev", &veth]);
            for ip in ips.iter().filter(|i| !i.contains(':')) {
                let ip = ip.split('/').next().unwrap_or_default();
                assert!(
                    host_neigh.lines().any(|l| l.starts_with(&format!("{ip} "))),
                    "{ctx}: host neighbours on {veth}: {host_neigh}"
                );
            }
            assert_eq!(
                p.pod.ip(&["neigh", "show"]),
                pod_neigh_before,
                "{ctx}: the pod's neighbours"
            );
        }
    }
}

#[test]
fn the_probe_is_off_unless_asked_for() {
    let p = wired("1.0.0", V4, &[]);
    let guard = ArpDrop::new(&p.host);
    let run = preflight(&p, "ADD", "1.0.0", json!({}));
    assert_eq!(run.status, 0, "{run:?}");
    let veth = host_veth(&p);
    assert_eq!(p.host.ip(&["neigh", "show", "dev", &veth]), "");
    drop(guard);
}

/// `nft add table arp t; ... drop`: every ARP packet the host receives is dropped, silently.
/// The table is deleted on drop (also when the test fails).
struct ArpDrop<'a> {
    ns: &'a Netns,
    family: &'static str,
}

impl<'a> ArpDrop<'a> {
    fn new(ns: &'a Netns) -> ArpDrop<'a> {
        Self::with(ns, "arp", "drop")
    }
    /// IPv6 neighbor solicitations dropped on input.
    fn nd(ns: &'a Netns) -> ArpDrop<'a> {
        Self::with(ns, "ip6", "icmpv6 type nd-neighbor-solicit drop")
    }
    fn with(ns: &'a Netns, family: &'static str, rule: &str) -> ArpDrop<'a> {
        let guard = ArpDrop { ns, family };
        ns.run(&["nft", "add", "table", family, "cpt"]);
        ns.run(&[
            "nft",
            "add",
            "chain",
            family,
            "cpt",
            "c",
            "{ type filter hook input priority 0; }",
        ]);
        let mut args = vec!["nft", "add", "rule", family, "cpt", "c"];
        args.extend(rule.split(' '));
        ns.run(&args);
        guard
    }
}

impl Drop for ArpDrop<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path()))
            .args(["nft", "delete", "table", self.family, "cpt"])
            .output();
    }
}

/// Each fault, the pod's families, the checks that see it in the configuration (turned off),
/// and the cause the probe's error must name.
const FAULTS: &[(&str, &[&str], &[&str], &str)] = &[
    (
        "no-proxy-arp",
        V4,
        &["host-proxy-arp"],
        "the host's configuration shows: net.ipv4.conf.CALI.proxy_arp is 0",
    ),
    (
        "no-host-gateway",
        V4,
        &["host-gateway-route"],
        "the host's configuration shows: the host has no route covering 169.254.1.1",
    ),
    (
        "no-forwarding",
        V4,
        &["host-forwarding"],
        "the host's configuration shows: net.ipv4.conf.CALI.forwarding is 0",
    ),
    (
        "host-veth-down",
        V4,
        // The kernel drops a down device's routes: host-route sees it too.
        &["host-veth", "host-route"],
        "the host's configuration shows: the host end CALI is down",
    ),
    (
        "host-veth-down",
        V6,
        // A down device loses its link-local too: pod-default-route sees that.
        &["host-veth", "host-route", "pod-default-route"],
        "the host's configuration shows: the host end CALI is down",
    ),
];

#[test]
fn each_fault_is_caught_by_the_probe_alone_for_every_version() {
    for version in VERSIONS {
        for (fault, ips, off, cause) in FAULTS {
            let p = wired(version, ips, &[fault]);
            let ctx = format!("{version} {fault} {ips:?}");
            let checks: serde_json::Map<String, Value> =
                off.iter().map(|c| (c.to_string(), json!("off"))).collect();
            // Without the probe, with those checks off, the fault goes unseen.
            let blind = preflight(&p, "ADD", version, json!({"checks": checks}));
            assert_eq!(blind.status, 0, "{ctx}: blind {blind:?}");
            let cause = cause.replace("CALI", &host_veth(&p));
            let run = preflight(&p, "ADD", version, json!({"probe": true, "checks": checks}));
            assert_probe_fails(&run, version, &cause, &ctx);
            if has_check(version) {
                let c = preflight(
                    &p,
                    "CHECK",
                    version,
                    json!({"probe": true, "checks": checks}),
                );
                assert_probe_fails(&c, version, &cause, &format!("CHECK {ctx}"));
            }
        }
    }
}

#[test]
fn an_nftables_rule_dropping_arp_or_nd_is_caught_and_doctor_probes_by_default() {
    for version in VERSIONS {
        for ips in [V4, V6] {
            let p = wired(version, ips, &[]);
            let ctx = format!("{version} {ips:?}");
            let guard = if ips == V4 {
                ArpDrop::new(&p.host)
            } else {
                ArpDrop::nd(&p.host)
            };
            // No config check sees a firewall rule: the node checks pass, the pod checks too.
            let blind = preflight(&p, "ADD", version, json!({}));
            assert_eq!(blind.status, 0, "{ctx}: {blind:?}");
            let first = if ips == V4 {
                "a firewall rule dropping ARP"
            } else {
                "a firewall rule dropping neighbor discovery"
            };
            let run = preflight(&p, "ADD", version, json!({"probe": true}));
            assert_probe_fails(
                &run,
                version,
                &format!("the host end's configuration shows no cause, so {first}"),
                &ctx,
            );
            if version == &"1.0.0" {
                let report = doctor(&p, &[]);
                assert!(
                    report.contains("[ERROR pod-gateway-probe]"),
                    "{ctx}: {report}"
                );
                assert!(report.contains("came back: nothing"), "{ctx}: {report}");
                let skipped = doctor(&p, &["--no-probe"]);
                assert!(!skipped.contains("pod-gateway-probe"), "{ctx}: {skipped}");
            }
            drop(guard);
            let healed = preflight(&p, "ADD", version, json!({"probe": true}));
            assert_eq!(healed.status, 0, "{ctx}: after the rule is gone {healed:?}");
        }
    }
}

/// IPv6's target is the host end's own link-local, which the kernel answers for whatever
/// proxy_ndp and forwarding say (net/ipv6/ndisc.c `ndisc_recv_ns`): the probe passes and only
/// the config checks see these faults. The test keeps the kernel's word.
#[test]
fn v6_proxy_ndp_and_forwarding_off_are_the_config_checks_to_see() {
    for (fault, check) in [
        ("no-proxy-arp", "host-proxy-arp"),
        ("no-forwarding", "host-forwarding"),
    ] {
        let p = wired("1.0.0", V6, &[fault]);
        let run = preflight(&p, "ADD", "1.0.0", json!({"probe": true}));
        assert_eq!(run.status, 1, "{fault}: {run:?}");
        let details = run.json()["details"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(details.contains(&format!("[ERROR {check}]")), "{details}");
        assert!(!details.contains("pod-gateway-probe"), "{fault}: {details}");
        let off = preflight(
            &p,
            "ADD",
            "1.0.0",
            json!({"probe": true, "checks": {check: "off"}}),
        );
        assert_eq!(off.status, 0, "{fault}: answered all the same: {off:?}");
    }
}

/// `doctor` in the pod's host namespace: its text report.
fn doctor(p: &Pod, extra: &[&str]) -> String {
    let out = std::process::Command::new("timeout")
        .args(["30", "nsenter"])
        .arg(format!("--net={}", p.host.path()))
        .arg(bin("calico-preflight"))
        .args(["doctor", "--netns-dir", "/run/netns", "--no-proc-scan"])
        .args(["--conf-dir", &format!("/nonexistent/cp-pr-{}", p.host.name)])
        .args(extra)
        .output()
        .expect("run doctor");
    assert_ne!(out.status.code(), Some(124), "doctor hung");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The side effects once the kernels have settled: the host learnt the pod's IPv4 entry (as the
/// pod's first packet would make it) and no IPv6 one (the NS is sent from `::`, as DAD does, so
/// the host records nothing and never confirms an entry with an NS of its own); the pod's
/// neighbour table is as it was, also after the host's 5 s NUD delay (delay_first_probe_time).
#[test]
fn side_effects_are_the_hosts_ipv4_entry_only_after_the_kernel_settles() {
    let p = wired("1.0.0", DUAL, &[]);
    let veth = host_veth(&p);
    let pod_before = settled_snapshot(&p.pod);
    let host_before = p.host.ip(&["neigh", "show", "dev", &veth]);
    let run = preflight(&p, "ADD", "1.0.0", json!({"probe": true}));
    assert_eq!(run.status, 0, "{run:?}");
    std::thread::sleep(std::time::Duration::from_secs(7));
    let pod_after = snapshot(&p.pod);
    assert!(
        pod_before == pod_after,
        "pod namespace changed:\n{}",
        snapshot_diff(&pod_before, &pod_after)
    );
    let host_after = p.host.ip(&["neigh", "show", "dev", &veth]);
    let learnt: Vec<&str> = host_after
        .lines()
        .filter(|l| !host_before.lines().any(|b| b == *l))
        .collect();
    assert_eq!(learnt.len(), 1, "{host_before} -> {host_after}");
    assert!(learnt[0].starts_with("10.244.3.5 lladdr "), "{learnt:?}");
}

/// A host end that does DAD (not as Calico leaves it): the NS goes out from the pod's address
/// with its link-layer option instead (a DAD NS could fail a tentative address), and is answered.
#[test]
fn a_host_end_doing_dad_is_probed_from_the_pods_address() {
    let p = wired("1.0.0", V6, &[]);
    let veth = host_veth(&p);
    p.host
        .sysctl(&format!("net.ipv6.conf.{veth}.accept_dad"), "1");
    let run = preflight(&p, "ADD", "1.0.0", json!({"probe": true}));
    assert_eq!(run.status, 0, "{run:?}");
    // From the pod's address, the host learns the pod's IPv6 entry.
    let host_neigh = p.host.ip(&["-6", "neigh", "show", "dev", &veth]);
    assert!(
        host_neigh.lines().any(|l| l.starts_with("fd00:33::5 ")),
        "{host_neigh}"
    );
}

/// A host end whose neigh proxy_delay is not 0 (Calico sets 0, but only warns when it cannot;
/// the kernel's default is 0.8 s): the broadcast request is answered only after a random wait
/// of up to proxy_delay, the unicast retry at once. A healthy pod passes.
#[test]
fn a_proxy_delay_on_the_host_end_is_no_broken_path() {
    for version in ["0.4.0", "1.0.0"] {
        let p = wired(version, V4, &[]);
        let veth = host_veth(&p);
        // 30 s in USER_HZ ticks: the broadcast's answer cannot come within the probe's wait.
        p.host
            .sysctl(&format!("net.ipv4.neigh.{veth}.proxy_delay"), "3000");
        let run = preflight(&p, "ADD", version, json!({"probe": true}));
        assert_eq!(run.status, 0, "{version}: {run:?}");
    }
}

/// `net.ipv6.conf.all.accept_dad=1` makes every device do DAD whatever its own accept_dad says
/// (net/ipv6/addrconf.c `addrconf_dad_begin`): right after wiring, the host end's link-local is
/// tentative, and an NS from `::` for it (a DAD NS) would fail its DAD for good. The probe must
/// neither break the host end nor fail a pod that is only waiting for DAD; once DAD is over it
/// is answered (from the pod's address).
#[test]
fn all_accept_dad_on_never_fails_the_host_ends_dad() {
    let host = Netns::new("pr-h");
    host.sysctl("net.ipv4.ip_forward", "1");
    host.sysctl("net.ipv6.conf.all.forwarding", "1");
    host.sysctl("net.ipv6.conf.all.accept_dad", "1");
    let pod = Netns::new("pr-p");
    let env = CniEnv::new("ADD", &pod.path(), "eth0");
    let prev = wire_pod(&host, &env, json!({"cniVersion": "1.0.0", "ips": V6}));
    let p = Pod {
        host,
        pod,
        env,
        prev,
    };
    let veth = host_veth(&p);
    // DAD lasts dad_transmits x retrans_time: 1 s by default, long enough for this ADD.
    let run = preflight(&p, "ADD", "1.0.0", json!({"probe": true}));
    let addrs = p.host.ip(&["-6", "addr", "show", "dev", &veth]);
    assert!(
        !addrs.contains("dadfailed"),
        "the probe failed the host end's DAD: {addrs}"
    );
    assert_eq!(run.status, 0, "{run:?}");
    if addrs.contains("tentative") {
        assert!(
            run.stderr.contains("[WARNING pod-gateway-probe]") && run.stderr.contains("tentative"),
            "{run:?}"
        );
    }
    let mut settled = false;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if !p
            .host
            .ip(&["-6", "addr", "show", "dev", &veth])
            .contains("tentative")
        {
            settled = true;
            break;
        }
    }
    assert!(
        settled,
        "{}",
        p.host.ip(&["-6", "addr", "show", "dev", &veth])
    );
    let run = preflight(&p, "ADD", "1.0.0", json!({"probe": true}));
    assert_eq!(run.status, 0, "{run:?}");
    assert!(!run.stderr.contains("pod-gateway-probe"), "{run:?}");
}

/// A host end doing DAD (accept_dad=1, not as Calico leaves it) whose link-local was added
/// again and is still tentative: a warning, not an error, and its DAD is left alone.
#[test]
fn a_tentative_host_link_local_warns() {
    let p = wired("1.0.0", V6, &[]);
    let veth = host_veth(&p);
    p.host
        .sysctl(&format!("net.ipv6.conf.{veth}.accept_dad"), "1");
    p.host
        .sysctl(&format!("net.ipv6.conf.{veth}.dad_transmits"), "30");
    let ll = "fe80::ecee:eeff:feee:eeee/64";
    p.host.ip(&["-6", "addr", "del", ll, "dev", &veth]);
    p.host.ip(&["-6", "addr", "add", ll, "dev", &veth]);
    let run = preflight(&p, "ADD", "1.0.0", json!({"probe": true}));
    let addrs = p.host.ip(&["-6", "addr", "show", "dev", &veth]);
    assert!(
        addrs.contains("tentative") && !addrs.contains("dadfailed"),
        "{addrs}"
    );
    assert_eq!(run.status, 0, "{run:?}");
    assert!(
        run.stderr.contains("[WARNING pod-gateway-probe]"),
        "{run:?}"
    );
}

/// probeTimeoutMs at its bounds against timeoutMs: a dropped ARP fails ADD with the probe's
/// own finding, also where probeTimeoutMs x 2 is more than timeoutMs (the probe is cut to fit,
/// and says so, instead of ADD timing out "reading the iptables chains"); 1 ms passes a
/// healthy pod.
#[test]
fn probe_timeout_at_its_bounds_fits_within_timeout_ms() {
    let p = wired("1.0.0", V4, &[]);
    let guard = ArpDrop::new(&p.host);
    let cause = "the host end's configuration shows no cause, so a firewall rule dropping ARP";
    for extra in [
        json!({"probe": true, "probeTimeoutMs": 5000}),
        json!({"probe": true, "probeTimeoutMs": 5000, "timeoutMs": 300}),
        json!({"probe": true, "probeTimeoutMs": 1}),
    ] {
        let run = preflight(&p, "ADD", "1.0.0", extra.clone());
        assert_probe_fails(&run, "1.0.0", cause, &extra.to_string());
        if extra["probeTimeoutMs"] == 5000 {
            assert!(
                run.json()["details"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("(probeTimeoutMs 5000 cut to fit"),
                "{run:?}"
            );
        }
    }
    drop(guard);
    let run = preflight(
        &p,
        "ADD",
        "1.0.0",
        json!({"probe": true, "probeTimeoutMs": 1}),
    );
    assert_eq!(run.status, 0, "{run:?}");
}

/// The packet sockets' closer (a forked child) never keeps the runtime's stdout open: once ADD
/// has exited, its stdout is at EOF at once (a non-blocking read finds no writer left), so a
/// runtime reading it to EOF is not held up by the child's ~10 ms close. Also: the child does
/// not outlive the plugin for long, and leaves no process behind.
#[test]
fn the_closer_child_never_holds_the_runtimes_stdout() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let p = wired("1.0.0", DUAL, &[]);
    let c = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico-preflight",
        "confDir": format!("/nonexistent/cp-pr-{}", p.host.name), "prevResult": p.prev,
        "probe": true});
    for _ in 0..5 {
        let mut child = std::process::Command::new("nsenter")
            .arg(format!("--net={}", p.host.path()))
            .arg(bin("calico-preflight"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(p.env.vars().iter().map(|(k, v)| (*k, v.clone())))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(c.to_string().as_bytes())
            .expect("write config");
        let mut out = child.stdout.take().expect("stdout");
        let status = child.wait().expect("wait");
        assert!(status.success(), "{status:?}");
        // SAFETY: setting O_NONBLOCK on our own pipe's read end.
        unsafe {
            let fl = libc::fcntl(out.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(out.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) => panic!(
                    "stdout not at EOF when ADD exited ({e}): a writer is left, read so far {:?}",
                    String::from_utf8_lossy(&all)
                ),
            }
        }
        assert!(String::from_utf8_lossy(&all).contains("\"ips\""));
    }
}

/// A pod with arp_accept=1 (not the default) takes the host end's ARP reply into its own
/// neighbour table (net/ipv4/arp.c `arp_process`: an unsolicited reply creates an entry when
/// arp_accept is on): exactly the entry its first packet would make, 169.254.1.1 at the host
/// end's MAC, and nothing else. accept_untracked_na is not met (the NA goes to all-nodes from
/// a DAD-style NS, and the pod does not forward).
#[test]
fn arp_accept_in_the_pod_learns_only_the_gateway_entry() {
    let p = wired("1.0.0", DUAL, &[]);
    p.pod.sysctl("net.ipv4.conf.all.arp_accept", "1");
    p.pod.sysctl("net.ipv6.conf.all.accept_untracked_na", "1");
    let before = p.pod.ip(&["neigh", "show"]);
    assert_eq!(before, "");
    let run = preflight(&p, "ADD", "1.0.0", json!({"probe": true}));
    assert_eq!(run.status, 0, "{run:?}");
    let after = p.pod.ip(&["neigh", "show"]);
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(lines.len(), 1, "{after}");
    assert!(
        lines[0].starts_with("169.254.1.1 dev eth0 lladdr ee:ee:ee:ee:ee:ee "),
        "{after}"
    );
}
