//! The iptables backend split of the field report (CentOS/RHEL 8: host and kube-proxy on
//! iptables-nft, Felix on iptables-legacy, or the reverse), built with Debian's iptables-legacy
//! and iptables-nft in throw-away namespaces. Checked twice: the chain reader against what the
//! tools created, and the plugin's verdict, first in the chain.

use calico_preflight::inspect::netfilter::{read_chains, Backend, Chain, NetfilterState};
use calico_preflight_integration::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn ipt(ns: &Netns, tool: &str, rule: &str) {
    let mut args = vec![tool];
    args.extend(rule.split(' '));
    ns.run(&args);
}

/// cali-* chains in `cali`, kube-proxy's KUBE-* chains (and the jumps) in `kube`.
fn calico_rules(ns: &Netns, be: &str) {
    for r in [
        "-t filter -N cali-INPUT",
        "-t filter -A cali-INPUT -p tcp --dport 179 -j ACCEPT",
        "-t filter -A cali-INPUT -j MARK --set-xmark 0x10000/0x10000",
        "-t filter -A INPUT -j cali-INPUT",
        "-t filter -N cali-empty",
    ] {
        ipt(ns, &format!("iptables-{be}"), r);
    }
    ipt(ns, &format!("ip6tables-{be}"), "-t filter -N cali-INPUT");
    ipt(
        ns,
        &format!("ip6tables-{be}"),
        "-t filter -A cali-INPUT -j ACCEPT",
    );
}

fn kube_rules(ns: &Netns, be: &str) {
    for r in [
        "-t nat -N KUBE-SERVICES",
        "-t nat -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp --dport 443 -j DNAT --to-destination 10.0.0.1:6443",
        "-t nat -A KUBE-SERVICES -d 10.96.0.10/32 -p udp --dport 53 -j DNAT --to-destination 10.0.0.2:53",
        "-t nat -A PREROUTING -j KUBE-SERVICES",
        "-t nat -N KUBE-MARK-MASQ",
    ] {
        ipt(ns, &format!("iptables-{be}"), r);
    }
}

/// read_chains() on a thread inside `ns` (setns affects only that thread).
fn read_in(ns: &Netns) -> NetfilterState {
    let path = ns.path();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        read_chains(Instant::now() + Duration::from_secs(5)).expect("read chains")
    })
    .join()
    .expect("reader thread")
}

fn rules(s: &NetfilterState, be: Backend, fam: &str, table: &str, name: &str) -> Option<u32> {
    s.chains
        .iter()
        .find(|c: &&Chain| c.backend == be && c.family == fam && c.table == table && c.name == name)
        .map(|c| c.rules)
}

/// A node namespace that forwards, an empty conf dir, the node checks first in the chain.
fn node() -> (Netns, TempDir) {
    let ns = Netns::new("ipt");
    ns.sysctl("net.ipv4.ip_forward", "1");
    let dir = TempDir::new("ipt");
    std::fs::create_dir_all(dir.join("net.d")).expect("conf dir");
    (ns, dir)
}

fn first_in_chain(ns: &Netns, dir: &std::path::Path, extra: Value) -> PluginRun {
    let mut conf = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico-preflight",
        "confDir": dir.join("net.d"), "nodeCheckTtlSeconds": 0});
    for (k, v) in extra.as_object().into_iter().flatten() {
        conf[k] = v.clone();
    }
    let env = CniEnv::new("ADD", "/proc/self/ns/net", "eth0");
    run_plugin(
        Some(ns),
        &bin("calico-preflight"),
        &env.vars(),
        conf.to_string().as_bytes(),
    )
}

/// An `iptables` command that resolves to `xtables-<variant>-multi`, as the alternatives do.
fn fake_iptables(dir: &std::path::Path, variant: &str) -> String {
    let target = dir.join(format!("xtables-{variant}-multi"));
    std::fs::write(&target, b"").expect("fake xtables");
    let link = dir.join(format!("iptables-{variant}-link"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    link.display().to_string()
}

#[test]
fn reader_sees_exactly_what_the_tools_created_in_both_backends() {
    for calico_legacy in [true, false] {
        let (ns, dir) = node();
        assert_eq!(
            read_in(&ns),
            NetfilterState::default(),
            "a fresh namespace has no chains"
        );
        let (cal, kub) = if calico_legacy {
            ("legacy", "nft")
        } else {
            ("nft", "legacy")
        };
        calico_rules(&ns, cal);
        kube_rules(&ns, kub);
        let s = read_in(&ns);
        let (cb, kb) = if calico_legacy {
            (Backend::Legacy, Backend::Nft)
        } else {
            (Backend::Nft, Backend::Legacy)
        };
        assert!(s.legacy_loaded);
        assert_eq!(
            rules(&s, cb, "ip", "filter", "cali-INPUT"),
            Some(2),
            "{s:#?}"
        );
        assert_eq!(rules(&s, cb, "ip", "filter", "cali-empty"), Some(0));
        assert_eq!(rules(&s, cb, "ip", "filter", "INPUT"), Some(1));
        assert_eq!(rules(&s, cb, "ip6", "filter", "cali-INPUT"), Some(1));
        assert_eq!(rules(&s, kb, "ip", "nat", "KUBE-SERVICES"), Some(2));
        assert_eq!(rules(&s, kb, "ip", "nat", "PREROUTING"), Some(1));
        assert_eq!(rules(&s, kb, "ip", "nat", "KUBE-MARK-MASQ"), Some(0));
        assert!(s
            .chains
            .iter()
            .all(|c| !c.name.starts_with("cali-") || c.backend == cb));
        assert!(s
            .chains
            .iter()
            .all(|c| !c.name.starts_with("KUBE-") || c.backend == kb));
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn split_backends_fail_first_in_chain_naming_the_felix_setting() {
    for (calico_be, kube_be, felix) in [
        ("legacy", "nft", "FELIX_IPTABLESBACKEND=NFT"),
        ("nft", "legacy", "FELIX_IPTABLESBACKEND=Legacy"),
    ] {
        let (ns, dir) = node();
        calico_rules(&ns, calico_be);
        kube_rules(&ns, kube_be);
        let run = first_in_chain(&ns, &dir, json!({}));
        assert_eq!(run.status, 1, "{calico_be}: {run:?}");
        let e = run.json();
        assert_eq!(e["code"], 100);
        let msg = e["msg"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(&format!("calico-preflight: iptables-backend: Calico programs iptables-{calico_be} while kube-proxy's chains (KUBE-*) live in iptables-{kube_be}")),
            "{msg}"
        );
        assert!(
            e["details"].as_str().unwrap_or_default().contains(felix),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn calico_in_both_backends_is_a_warning_and_a_clean_node_passes() {
    let (ns, dir) = node();
    let log = dir.join("preflight.log");
    let clean = first_in_chain(&ns, &dir, json!({}));
    assert_eq!(
        (clean.status, clean.stdout.trim()),
        (0, r#"{"cniVersion":"1.0.0"}"#),
        "{clean:?}"
    );
    calico_rules(&ns, "legacy");
    calico_rules(&ns, "nft");
    kube_rules(&ns, "nft");
    let run = first_in_chain(&ns, &dir, json!({"logFile": log}));
    assert_eq!(run.status, 0, "{run:?}");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains("[WARNING iptables-backend] Calico's chains (cali-*) exist in both"),
        "{logged}"
    );
    let strict = first_in_chain(&ns, &dir, json!({"checks": {"iptables-backend": "error"}}));
    assert_eq!(strict.json()["code"], 100, "{strict:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn iptables_command_disagreeing_with_calico_warns() {
    let (ns, dir) = node();
    calico_rules(&ns, "nft");
    kube_rules(&ns, "nft");
    let log = dir.join("preflight.log");
    let agree = first_in_chain(
        &ns,
        &dir,
        json!({"iptablesCommand": fake_iptables(&dir, "nft"), "logFile": log}),
    );
    assert_eq!(agree.status, 0, "{agree:?}");
    assert!(!std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("iptables-backend"));
    let legacy_cmd = fake_iptables(&dir, "legacy");
    let run = first_in_chain(
        &ns,
        &dir,
        json!({"iptablesCommand": legacy_cmd, "logFile": log}),
    );
    assert_eq!(run.status, 0, "a warning does not fail: {run:?}");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("[WARNING iptables-backend] the iptables command drives iptables-legacy but Calico's rules are in iptables-nft"), "{logged}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn status_reports_the_split_as_code_50() {
    let (ns, dir) = node();
    calico_rules(&ns, "legacy");
    kube_rules(&ns, "nft");
    let conf = json!({"cniVersion": "1.1.0", "name": "k8s-pod-network", "type": "calico-preflight",
        "confDir": dir.join("net.d"), "nodeCheckTtlSeconds": 0});
    let vars = vec![
        ("CNI_COMMAND", "STATUS".to_string()),
        ("CNI_PATH", "/opt/cni/bin".to_string()),
    ];
    let run = run_plugin(
        Some(&ns),
        &bin("calico-preflight"),
        &vars,
        conf.to_string().as_bytes(),
    );
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(run.json()["code"], 50);
    assert!(run.json()["msg"]
        .as_str()
        .unwrap_or_default()
        .contains("iptables-backend"));
    let ok = Netns::new("ipt-ok");
    ok.sysctl("net.ipv4.ip_forward", "1");
    let run = run_plugin(
        Some(&ok),
        &bin("calico-preflight"),
        &vars,
        conf.to_string().as_bytes(),
    );
    assert_eq!((run.status, run.stdout.as_str()), (0, ""), "{run:?}");
    let _ = std::fs::remove_dir_all(dir);
}
