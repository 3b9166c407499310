//! Routes with more than one path, read through `Netlink` from a real namespace: an IPv6 ECMP
//! default route (RTA_MULTIPATH) and routes over nexthop objects (RTA_NH_ID, resolved with
//! RTM_GETNEXTHOP), with the kernel's compat reporting on and off.

use calico_preflight::inspect::netlink::Netlink;
use calico_preflight::inspect::{Deadline, NextHop, Route};
use calico_preflight_integration::*;
use std::net::IpAddr;
use std::time::Duration;

/// What `Netlink` reads inside `ns` (on a thread of its own: setns affects only that thread):
/// the main table, and the fibmatch answers for `ips`.
fn read_in(ns: &Netns, ips: &[&str]) -> (Vec<Route>, Vec<Option<Route>>) {
    let path = ns.path();
    let ips: Vec<IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut nl = Netlink::open(Deadline::after(Duration::from_secs(5))).expect("open");
        let routes = nl.main_routes().expect("main routes");
        let found = ips
            .iter()
            .map(|ip| nl.route_fibmatch(*ip).expect("fibmatch"))
            .collect();
        (routes, found)
    })
    .join()
    .expect("reader thread")
}

/// `ip -o link show DEV` starts with "INDEX: DEV@...".
fn ifindex(ns: &Netns, dev: &str) -> u32 {
    let out = ns.ip(&["-o", "link", "show", dev]);
    out.split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("ifindex")
}

fn hop(gw: &str, oif: u32) -> NextHop {
    NextHop {
        gateway: Some(gw.parse().unwrap()),
        oif: Some(oif),
    }
}

fn sorted(mut v: Vec<NextHop>) -> Vec<NextHop> {
    v.sort_by_key(|h| (h.oif, h.gateway));
    v
}

/// Two veth pairs whose ends are up in `ns` (their peers up in `peer`): devices with carrier
/// for the routes to go over.
fn two_links(ns: &Netns, peer: &Netns) -> (u32, u32) {
    for (dev, p) in [("vA", "pA"), ("vB", "pB")] {
        ns.ip(&[
            "link", "add", dev, "type", "veth", "peer", "name", p, "netns", &peer.name,
        ]);
        ns.ip(&["link", "set", dev, "up"]);
        peer.ip(&["link", "set", p, "up"]);
    }
    (ifindex(ns, "vA"), ifindex(ns, "vB"))
}

#[test]
fn ipv6_ecmp_default_route_has_both_paths() {
    let ns = Netns::new("nlecmp");
    let peer = Netns::new("nlecmpp");
    let (a, b) = two_links(&ns, &peer);
    ns.ip(&[
        "-6", "route", "add", "default", "nexthop", "via", "fe80::1", "dev", "vA", "nexthop",
        "via", "fe80::2", "dev", "vB",
    ]);
    let want = vec![hop("fe80::1", a), hop("fe80::2", b)];

    let (routes, found) = read_in(&ns, &["2001:db8::1"]);
    let defaults: Vec<&Route> = routes.iter().filter(|r| r.v6 && r.is_default()).collect();
    assert_eq!(defaults.len(), 1, "one multipath route: {routes:#?}");
    assert_eq!(sorted(defaults[0].paths()), want, "{:#?}", defaults[0]);
    assert_eq!(defaults[0].nh_id, None);
    let fib = found[0].as_ref().expect("the default route matches");
    assert!(fib.is_default());
    assert_eq!(sorted(fib.paths()), want, "{fib:#?}");
}

#[test]
fn nexthop_object_routes_resolve_to_their_hops() {
    let ns = Netns::new("nlnhid");
    let peer = Netns::new("nlnhidp");
    let (a, b) = two_links(&ns, &peer);
    for nh in [
        "id 7 via 169.254.1.1 dev vA onlink",
        "id 8 via 169.254.1.2 dev vB onlink",
        "id 9 group 7/8",
        "id 10 via fe80::1 dev vA",
    ] {
        let mut args = vec!["nexthop", "add"];
        args.extend(nh.split(' '));
        ns.ip(&args);
    }
    ns.ip(&["route", "add", "10.99.0.0/16", "nhid", "7"]);
    ns.ip(&["route", "add", "10.98.0.0/16", "nhid", "9"]);
    ns.ip(&["-6", "route", "add", "default", "nhid", "10"]);
    let single = vec![hop("169.254.1.1", a)];
    let group = vec![hop("169.254.1.1", a), hop("169.254.1.2", b)];
    let v6 = vec![hop("fe80::1", a)];

    // With nexthop_compat_mode 1 (the default) the kernel also reports the hops as route
    // attributes; with 0, only the id: both must read the same.
    for compat in ["1", "0"] {
        ns.sysctl("net.ipv4.nexthop_compat_mode", compat);
        let (routes, found) = read_in(&ns, &["10.99.1.1", "10.98.1.1", "2001:db8::1"]);
        let by_dst = |dst: &str| {
            routes
                .iter()
                .find(|r| r.dst.map(|d| d.to_string()).as_deref() == Some(dst))
                .unwrap_or_else(|| panic!("no route to {dst}: {routes:#?}"))
        };
        let r = by_dst("10.99.0.0/16");
        assert_eq!(r.nh_id, Some(7), "compat {compat}");
        assert_eq!(r.paths(), single, "compat {compat}: {r:#?}");
        assert_eq!(
            (r.gateway, r.oif),
            (single[0].gateway, Some(a)),
            "compat {compat}"
        );
        let r = by_dst("10.98.0.0/16");
        assert_eq!(r.nh_id, Some(9), "compat {compat}");
        assert_eq!(sorted(r.paths()), group, "compat {compat}: {r:#?}");
        let d6 = routes
            .iter()
            .find(|r| r.v6 && r.is_default())
            .expect("v6 default");
        assert_eq!(
            (d6.nh_id, d6.paths()),
            (Some(10), v6.clone()),
            "compat {compat}"
        );

        let paths: Vec<Vec<NextHop>> = found
            .iter()
            .map(|f| sorted(f.as_ref().expect("a route matches").paths()))
            .collect();
        assert_eq!(
            paths,
            vec![single.clone(), group.clone(), v6.clone()],
            "compat {compat}"
        );
    }
}
