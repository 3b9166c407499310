//! Everything the plugin decodes from its untrusted inputs, fed arbitrary bytes: the stdin
//! network configuration (NetConf, our config keys, the prevResult and its conversion) and
//! CNI_ARGS. Besides "never panics", it checks the invariants the rest of the plugin relies on.

#![no_main]

use calico_preflight::cni::env::{parse_args, validate_ifname};
use calico_preflight::cni::netconf::{read_stdin, sniff_version};
use calico_preflight::cni::result::pass_through;
use calico_preflight::cni::{version, CniError, ErrorCode, NetConf, PrevResult};
use calico_preflight::config::Config;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Every error must encode as the spec's error object, whatever text it carries.
fn check_error(e: &CniError, allowed: &[ErrorCode]) {
    assert!(
        allowed.contains(&e.code),
        "unexpected code {:?}: {e}",
        e.code
    );
    assert!(e.msg.starts_with("calico-preflight: "), "{e}");
    let v: Value = serde_json::from_str(&e.to_json(version::LATEST)).expect("error JSON");
    assert_eq!(v["code"], e.code.as_u32());
    assert_eq!(v["msg"], e.msg.as_str());
}

fuzz_target!(|data: &[u8]| {
    // stdin as the plugin reads it (the size cap is tested by the integration tests).
    let bytes = read_stdin(data).expect("reading a slice cannot fail below the cap");
    if let Some(v) = sniff_version(&bytes) {
        assert!(version::is_supported(&v));
    }

    match NetConf::parse(&bytes) {
        Err(e) => check_error(
            &e,
            &[
                ErrorCode::IncompatibleVersion,
                ErrorCode::DecodeFailure,
                ErrorCode::InvalidConfig,
            ],
        ),
        Ok(conf) => {
            assert!(version::is_supported(&conf.cni_version));
            if let Err(e) = Config::from_json(&conf.raw) {
                check_error(&e, &[ErrorCode::InvalidConfig]);
            }
            if let Some(prev) = &conf.prev_result {
                assert!(prev.is_object());
                match PrevResult::parse(prev) {
                    Err(e) => check_error(&e, &[ErrorCode::InvalidConfig]),
                    Ok(p) => {
                        for ip in &p.ips {
                            if let Some(i) = ip.interface {
                                assert!(i < p.interfaces.len(), "index {i} escaped validation");
                            }
                        }
                        let _ = p.pod_ips("eth0");
                        let _ = p.pod_interface_index("eth0");
                        let _ = p.host_interfaces().count();
                    }
                }
                match pass_through(prev, &conf.cni_version) {
                    Err(e) => check_error(
                        &e,
                        &[ErrorCode::IncompatibleVersion, ErrorCode::InvalidConfig],
                    ),
                    Ok(out) => {
                        let (Some(o), Some(p)) = (out.as_object(), prev.as_object()) else {
                            panic!("pass_through must return an object");
                        };
                        assert_eq!(o["cniVersion"], conf.cni_version.as_str());
                        // Nothing dropped, nothing reordered: the keys of prevResult, in order
                        // (cniVersion appended at the end when it was missing).
                        let keys: Vec<&String> = o.keys().filter(|k| *k != "cniVersion").collect();
                        let before: Vec<&String> =
                            p.keys().filter(|k| *k != "cniVersion").collect();
                        assert_eq!(keys, before);
                        for k in keys {
                            if k != "ips" {
                                assert_eq!(o[k], p[k], "{k} changed");
                            }
                        }
                        // What we print, the next plugin can read, with the same keys. (Not the
                        // same Value: serde_json's default float parser is not correctly rounded,
                        // so a float can move by an ulp per hop; see fuzz/README.md.)
                        let again: Value =
                            serde_json::from_str(&out.to_string()).expect("result re-parses");
                        let again_keys: Vec<&String> =
                            again.as_object().expect("object").keys().collect();
                        assert_eq!(again_keys, o.keys().collect::<Vec<_>>());
                    }
                }
            }
        }
    }

    // The same bytes as environment strings.
    let s = String::from_utf8_lossy(data);
    for (k, v) in parse_args(&s) {
        assert!(
            !k.is_empty() && !k.contains(';') && !k.contains('='),
            "{k:?}"
        );
        assert!(!v.contains(';'), "{v:?}");
    }
    if validate_ifname(&s).is_ok() {
        assert!(!s.is_empty() && s.len() <= 15 && !s.contains('/') && s != "." && s != "..");
    }
});
