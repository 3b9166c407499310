//! `host-network-manager` over temp host roots: NetworkManager and systemd-networkd configs that
//! do and do not leave Calico's interfaces alone, with a stand-in process of the right name for
//! "running" (a copy of sleep, so /proc/<pid>/comm says NetworkManager or systemd-network),
//! killed on drop. The machine's own /etc is never read.

use calico_preflight::checks::{host_network_manager, CheckId, Finding, NodeFacts, Severity};
use calico_preflight::inspect::{netmgr, Deadline};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

/// Process detection sees every process: one stand-in at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A host root under the temp dir, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let p = std::env::temp_dir().join(format!("cp-netmgr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir root");
        Root(p)
    }
    fn put(&self, host_path: &str, text: &str) {
        let p = self.0.join(host_path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    fn findings(&self, doctor: bool) -> Vec<Finding> {
        let mut n = netmgr::gather(&self.0, Deadline::after(Duration::from_secs(5)));
        if doctor {
            n.veth_link = Some(netmgr::gather_links(&self.0));
        }
        let facts = NodeFacts {
            netmgr: Some(n),
            ..NodeFacts::default()
        };
        host_network_manager::check(&facts)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process named `name` (a copy of sleep), killed and removed on drop.
struct StandIn {
    child: Child,
    dir: PathBuf,
}

impl StandIn {
    fn start(name: &str) -> StandIn {
        let dir = std::env::temp_dir().join(format!("cp-standin-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let bin = dir.join(name);
        std::fs::copy(sleep_path(), &bin).expect("copy sleep");
        let child = Command::new(&bin)
            .arg("600")
            .spawn()
            .expect("start stand-in");
        // Wait until the kernel reports the new name (exec done).
        let comm = format!("/proc/{}/comm", child.id());
        let want: String = name.chars().take(15).collect();
        for _ in 0..200 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim_end() == want) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        StandIn { child, dir }
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sleep_path() -> &'static Path {
    ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("sleep")
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const CALICO_NM: &str = "[keyfile]\nunmanaged-devices=interface-name:cali*;interface-name:tunl*;interface-name:vxlan.calico;interface-name:vxlan-v6.calico;interface-name:wireguard.cali;interface-name:wg-v6.cali\n";

#[test]
fn network_manager_without_calicos_keyfile_fails_and_with_it_is_quiet() {
    let _g = lock();
    let root = Root::new("nm");
    root.put(
        "/etc/NetworkManager/NetworkManager.conf",
        "[main]\nplugins=ifupdown,keyfile\n",
    );
    // Not running: no finding whatever the config says.
    assert!(root.findings(false).is_empty());

    let nm = StandIn::start("NetworkManager");
    // Running, but its runtime dir (made when it starts) is not there: not taken for running.
    assert!(root.findings(false).is_empty());
    root.put("/run/NetworkManager/devices/.keep", "");
    let f = root.findings(false);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].check, CheckId::HostNetworkManager);
    assert_eq!(f[0].severity, Severity::Error);
    assert!(
        f[0].object.contains(&format!("pid {}", nm.pid())),
        "{}",
        f[0].object
    );
    assert!(f[0].found.contains("cali*"));
    assert!(f[0]
        .remedy
        .contains("/etc/NetworkManager/conf.d/99-calico.conf"));

    // Calico's keyfile in conf.d: quiet.
    root.put("/etc/NetworkManager/conf.d/calico.conf", CALICO_NM);
    let f = root.findings(false);
    assert!(f.is_empty(), "{f:#?}");

    // A later file replacing the list hands the tunnels back (cali veths too): error again.
    root.put(
        "/etc/NetworkManager/conf.d/docker.conf",
        "[keyfile]\nunmanaged-devices=interface-name:docker0\n",
    );
    let f = root.findings(false);
    assert_eq!(f[0].severity, Severity::Error, "{f:#?}");
    assert!(f[0]
        .found
        .contains("/etc/NetworkManager/conf.d/docker.conf"));
}

#[test]
fn network_manager_found_by_pid_file_and_its_udev_rule_covers_only_veths() {
    let _g = lock();
    let root = Root::new("nm-pid");
    let nm = StandIn::start("NetworkManager");
    root.put(
        "/run/NetworkManager/NetworkManager.pid",
        &format!("{}\n", nm.pid()),
    );
    root.put(
        "/usr/lib/udev/rules.d/85-nm-unmanaged.rules",
        "ENV{ID_NET_DRIVER}==\"veth\", ENV{INTERFACE}!=\"eth[0-9]*\", ENV{NM_UNMANAGED}=\"1\"\n",
    );
    let f = root.findings(false);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].object.contains("pid file"), "{}", f[0].object);
    // The veths are NetworkManager's unmanaged by its own rule; the tunnels are not: a warning.
    assert_eq!(f[0].severity, Severity::Warn);
    assert!(
        !f[0].found.contains("NetworkManager: cali*"),
        "{}",
        f[0].found
    );
    assert!(f[0].found.contains("vxlan.calico"));
}

#[test]
fn networkd_catch_all_network_fails_unless_unmanaged_or_foreign_routes_kept() {
    let _g = lock();
    let root = Root::new("nd");
    root.put(
        "/usr/lib/systemd/network/80-dhcp.network",
        "[Match]\nType=ether\n\n[Network]\nDHCP=yes\n",
    );
    root.put(
        "/etc/systemd/network/10-uplink.network",
        "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n",
    );
    assert!(root.findings(false).is_empty(), "not running");

    let _nd = StandIn::start("systemd-networkd");
    // The state file it writes once it runs (networkd-state-file.c).
    root.put("/run/systemd/netif/state", "OPER_STATE=routable\n");
    let f = root.findings(false);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].object.starts_with("systemd-networkd"));
    assert!(f[0]
        .found
        .contains("/usr/lib/systemd/network/80-dhcp.network"));
    assert!(f[0]
        .remedy
        .contains("/etc/systemd/network/10-calico.network"));

    // The file the remedy names makes it quiet.
    root.put(
        "/etc/systemd/network/10-calico.network",
        "[Match]\nName=cali* tunl* vxlan.calico vxlan-v6.calico wireguard.cali wg-v6.cali\n\n[Link]\nUnmanaged=yes\n",
    );
    let f = root.findings(false);
    assert!(f.is_empty(), "{f:#?}");

    // Or, without it, ManageForeignRoutes=no in a drop-in.
    std::fs::remove_file(root.0.join("etc/systemd/network/10-calico.network")).expect("rm");
    assert_eq!(root.findings(false).len(), 1);
    root.put(
        "/etc/systemd/networkd.conf.d/calico.conf",
        "[Network]\nManageForeignRoutes=no\n",
    );
    assert!(root.findings(false).is_empty());
}

#[test]
fn networkd_with_only_uplink_matches_is_quiet_and_masked_files_do_not_count() {
    let _g = lock();
    let root = Root::new("nd-quiet");
    root.put(
        "/etc/systemd/network/10-uplink.network",
        "[Match]\nName=eth* en*\n\n[Network]\nDHCP=yes\n",
    );
    root.put(
        "/usr/lib/systemd/network/99-all.network",
        "[Match]\nName=*\n",
    );
    std::fs::create_dir_all(root.0.join("etc/systemd/network")).expect("mkdir");
    std::os::unix::fs::symlink(
        "/dev/null",
        root.0.join("etc/systemd/network/99-all.network"),
    )
    .expect("mask");
    let _nd = StandIn::start("systemd-networkd");
    // The state file it writes once it runs (networkd-state-file.c).
    root.put("/run/systemd/netif/state", "OPER_STATE=routable\n");
    let f = root.findings(false);
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn udev_default_link_policy_is_a_doctor_warning_and_the_override_silences_it() {
    let _g = lock();
    let root = Root::new("links");
    root.put(
        "/usr/lib/systemd/network/99-default.link",
        "[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel database onboard slot path\nAlternativeNamesPolicy=database onboard slot path\nMACAddressPolicy=persistent\n",
    );
    // Not in ADD's node checks.
    assert!(root.findings(false).is_empty());
    let f = root.findings(true);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Warn);
    assert!(f[0].object.contains("99-default.link"));
    assert!(f[0]
        .remedy
        .contains("/etc/systemd/network/50-calico-veth.link"));
    root.put(
        "/etc/systemd/network/50-calico-veth.link",
        "[Match]\nDriver=veth\n\n[Link]\nMACAddressPolicy=none\n",
    );
    assert!(root.findings(true).is_empty());
}
