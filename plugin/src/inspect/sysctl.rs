//! Reading `/proc/sys/net/...` values. `/proc/sys/net` shows the namespace of the reading
//! thread, so these reads describe whichever namespace the caller is in.

use super::SysctlRead;
use crate::cni::env::validate_ifname;

/// Reads `key` (dotted, e.g. `net.ipv4.ip_forward`). Only the dotted form is accepted: the
/// interface part must already have passed [`validate_ifname`].
pub fn read(key: &str) -> SysctlRead {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{path}: {e}"));
    SysctlRead {
        key: key.to_string(),
        value,
    }
}

/// Sysctl key of a per-interface setting, e.g. `net.ipv4.conf.cali123.proxy_arp`, or `None`
/// when the name could escape the `/proc/sys` directory (or holds a dot, which the dotted form
/// cannot express; the kernel allows dots in names, sysctl(8) writes them as '/').
pub fn iface_key(family: &str, iface: &str, setting: &str) -> Option<String> {
    (validate_ifname(iface).is_ok() && !iface.contains('.'))
        .then(|| format!("net.{family}.conf.{iface}.{setting}"))
}

/// The settings Calico's CNI plugin applies to the host end of a pod's veth.
pub fn read_veth_sysctls(veth: &str, v4: bool, v6: bool) -> Vec<SysctlRead> {
    let mut keys = Vec::new();
    if v4 {
        keys.extend(["proxy_arp", "forwarding"].map(|s| iface_key("ipv4", veth, s)));
    }
    if v6 {
        keys.extend(["proxy_ndp", "forwarding"].map(|s| iface_key("ipv6", veth, s)));
    }
    keys.into_iter().flatten().map(|k| read(&k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reject_unsafe_names() {
        assert_eq!(
            iface_key("ipv4", "cali1", "proxy_arp").as_deref(),
            Some("net.ipv4.conf.cali1.proxy_arp")
        );
        for bad in ["..", "a/b", "", "x.y", "waytoolonginterfacename"] {
            assert!(iface_key("ipv4", bad, "proxy_arp").is_none(), "{bad}");
        }
    }

    #[test]
    fn reads_a_sysctl_that_always_exists() {
        let r = read("net.ipv4.conf.lo.forwarding");
        assert!(matches!(r.value.as_deref(), Ok("0") | Ok("1")), "{r:?}");
        assert!(read("net.ipv4.conf.no-such-if0.forwarding").value.is_err());
    }
}
