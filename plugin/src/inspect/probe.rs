//! The active gateway probe (`pod-gateway-probe`): from inside the pod's namespace, one ARP
//! request for 169.254.1.1 (IPv6: one neighbor solicitation for the host end's link-local) on
//! the pod interface, through a raw `AF_PACKET` socket bound to it, answered by the host end's
//! MAC within the timeout; retried once. Nothing else is sent, and the veth's only other end is
//! the host, so nothing leaves the node.
//!
//! Side effects, and why there are no others: the host kernel records the pod's IPv4 neighbour
//! entry on the host end when it answers (net/ipv4/arp.c `arp_process`: `neigh_event_ns`), as
//! the pod's first packet would; its reply goes out without that entry, so no follow-up. The
//! IPv6 NS is sent from `::` where the host end does no DAD (see [`plan`]): answered to
//! all-nodes, it records nothing. The pod's own neighbour table is not written: a packet socket
//! bypasses the pod's ARP/ND stack on send, and the pod kernel ignores a reply it did not ask
//! for (`arp_accept` and `accept_untracked_na` are 0 by default: only an existing entry is
//! refreshed, with the same MAC). A pod with `arp_accept` on takes the ARP reply in: it gains
//! 169.254.1.1 at the host end's MAC, the entry its first packet would make (the reply cannot
//! go elsewhere: its destination is the request's sender MAC, which the host records).

use super::{Deadline, HostView, PodView, Target};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Calico's IPv4 gateway (the same as checks::CALICO_GATEWAY_V4; inspect owns no check types).
const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// Requests per family: the first and one retry.
pub const ATTEMPTS: u8 = 2;
/// Replies read per family at most (a busy pod's other IPv6 traffic is filtered in the kernel,
/// but a flood of forged replies must not keep the probe reading).
const MAX_READS: usize = 64;
/// Distinct other MACs remembered.
const MAX_OTHER_MACS: usize = 4;

/// What one probe sends: everything is decided before entering the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    pub ifname: String,
    pub ifindex: u32,
    pub pod_mac: [u8; 6],
    pub host_mac: [u8; 6],
    pub host_veth: String,
    /// The pod's IPv4 (the ARP request's sender).
    pub v4: Option<Ipv4Addr>,
    /// Every ARP request goes to the host end's MAC, not only the retry: its neigh
    /// proxy_delay is not 0, so a broadcast would be answered late (see [`plan`]).
    pub v4_unicast: bool,
    /// The NS's source (`::`, or the pod's IPv6: see [`plan`]) and the target (the host end's
    /// link-local).
    pub v6: Option<(Ipv6Addr, Ipv6Addr)>,
    /// The IPv6 target is tentative on the host end: the NS is not sent.
    pub v6_tentative: bool,
    pub timeout: Duration,
}

/// What the probe found, per family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub ifname: String,
    pub host_veth: String,
    pub pod_mac: Vec<u8>,
    pub host_mac: Vec<u8>,
    /// The wait per request: `probeTimeoutMs`, or less where that did not fit the call's
    /// deadline (see [`run`]).
    pub timeout_ms: u64,
    /// `probeTimeoutMs` as configured.
    pub asked_timeout_ms: u64,
    pub families: Vec<FamilyProbe>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyProbe {
    pub v6: bool,
    /// 169.254.1.1, or the host end's link-local.
    pub target: IpAddr,
    /// The pod's address the request came from.
    pub source: IpAddr,
    /// The destination MAC (broadcast, or the target's solicited-node multicast MAC).
    pub dst_mac: Vec<u8>,
    /// Requests actually sent.
    pub sent: u8,
    pub answer: Answer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The host end's MAC answered, to the `attempt`th request, after `micros` from it.
    Host { attempt: u8, micros: u64 },
    /// Replies came, none from the host end's MAC: these MACs sent them.
    OtherMacs(Vec<Vec<u8>>),
    /// No reply to any request.
    Nothing,
    /// Not sent: the host end's address is still tentative (duplicate address detection in
    /// progress), so it would not answer yet, and a DAD-style NS for it would fail its DAD.
    HostTentative,
    /// The probe could not be carried out (socket, send or namespace error): says nothing about
    /// the path.
    NotRun(String),
}

impl FamilyProbe {
    /// "ARP request who-has 169.254.1.1 tell 10.0.0.5" style text of what was sent.
    pub fn describe_sent(&self, o: &ProbeOutcome) -> String {
        let what = if self.v6 {
            format!(
                "ICMPv6 neighbor solicitation for {} from {} to {}",
                self.target,
                self.source,
                solicited_node(match self.target {
                    IpAddr::V6(t) => t,
                    IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
                })
            )
        } else {
            format!("ARP request who-has {} tell {}", self.target, self.source)
        };
        let to = if !self.v6 && self.sent > 1 && self.dst_mac != o.host_mac {
            format!(
                "{}, then to the host end's {}",
                super::format_mac(&self.dst_mac),
                super::format_mac(&o.host_mac)
            )
        } else {
            super::format_mac(&self.dst_mac)
        };
        format!(
            "{what}, from {} to {to} on {}, {} time(s), {} ms each",
            super::format_mac(&o.pod_mac),
            o.ifname,
            self.sent,
            o.timeout_ms
        )
    }
}

/// The plan for a pod, or `None` when there is nothing to probe: the pod view, its interface
/// (up, with a MAC), the host end (with a MAC) or a pod IP of either family is missing. Each of
/// those is another check's finding; the probe proves the path of wiring that exists.
pub fn plan(
    target: &Target,
    pod: Option<&PodView>,
    host: &HostView,
    timeout: Duration,
) -> Option<ProbePlan> {
    plan_with(target, pod, host, timeout, &read_v6_dad, &|k| {
        super::sysctl::read(k).value.ok()
    })
}

/// How duplicate address detection stands for the IPv6 target on the host end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V6Dad {
    /// `net.ipv6.conf.all.accept_dad`: a device does DAD unless both it and its own are below
    /// 1 (net/ipv6/addrconf.c `addrconf_dad_begin`).
    pub all_accept_dad: Option<String>,
    pub addr: AddrState,
}

/// The target address on the host end, by its flags in /proc/net/if_inet6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrState {
    Ready,
    /// In DAD: answers no NS (and a DAD NS for it fails its DAD).
    Tentative,
    /// In optimistic DAD: answers an NS from an address, a DAD NS still fails it.
    Optimistic,
    DadFailed,
    /// Not on the host end.
    Absent,
    /// Could not be read.
    Unknown,
}

const IFA_F_OPTIMISTIC: u32 = 0x04;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;
/// /proc/net/if_inet6 read at most (~60 bytes a line: some 16000 addresses).
const MAX_IF_INET6: u64 = 1 << 20;

/// The DAD facts of the host's namespace (the calling thread's) for `target` on `ifindex`.
fn read_v6_dad(ifindex: u32, target: Ipv6Addr) -> V6Dad {
    use std::io::Read;
    let all_accept_dad = super::sysctl::read("net.ipv6.conf.all.accept_dad")
        .value
        .ok();
    let mut text = String::new();
    let addr = match std::fs::File::open("/proc/thread-self/net/if_inet6")
        .and_then(|f| f.take(MAX_IF_INET6).read_to_string(&mut text))
    {
        Ok(_) => addr_state(&text, ifindex, target),
        Err(_) => AddrState::Unknown,
    };
    V6Dad {
        all_accept_dad,
        addr,
    }
}

/// `target`'s state on `ifindex` from /proc/net/if_inet6 text (net/ipv6/addrconf.c
/// `if6_seq_show`: address, ifindex, prefix length, scope, flags, name; hex).
pub fn addr_state(text: &str, ifindex: u32, target: Ipv6Addr) -> AddrState {
    let want = target
        .octets()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let mut complete = text.ends_with('\n') || text.is_empty();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, index, _, _, flags, ..] = f[..] else {
            complete = false;
            continue;
        };
        if addr != want || u32::from_str_radix(index, 16).ok() != Some(ifindex) {
            continue;
        }
        let Ok(flags) = u32::from_str_radix(flags, 16) else {
            return AddrState::Unknown;
        };
        return if flags & IFA_F_DADFAILED != 0 {
            AddrState::DadFailed
        } else if flags & IFA_F_OPTIMISTIC != 0 {
            AddrState::Optimistic
        } else if flags & IFA_F_TENTATIVE != 0 {
            AddrState::Tentative
        } else {
            AddrState::Ready
        };
    }
    if complete && text.len() < MAX_IF_INET6 as usize {
        AddrState::Absent
    } else {
        AddrState::Unknown
    }
}

/// [`plan`] with the host end's DAD facts from `v6_dad` (the host's /proc, or a test's).
pub fn plan_with(
    target: &Target,
    pod: Option<&PodView>,
    host: &HostView,
    timeout: Duration,
    v6_dad: &dyn Fn(u32, Ipv6Addr) -> V6Dad,
    read_sysctl: &dyn Fn(&str) -> Option<String>,
) -> Option<ProbePlan> {
    let pod = pod?;
    let link = pod.link.as_ref()?;
    if !link.up {
        return None;
    }
    let pod_mac: [u8; 6] = link.mac.as_deref()?.try_into().ok()?;
    let veth = host.veth()?;
    let host_mac: [u8; 6] = veth.mac.as_deref()?.try_into().ok()?;
    // The host end's settings only the probe needs, read here (in the host's namespace) when
    // it runs, not on every ADD: from the gathered sysctls where they are, else now.
    let veth_sysctl = |family: &str, dir: &str, setting: &str| -> Option<String> {
        super::sysctl::iface_key(family, &veth.name, setting)?;
        let key = format!("net.{family}.{dir}.{}.{setting}", veth.name);
        match host.sysctl(&key) {
            Some(v) => v.clone().ok(),
            None => read_sysctl(&key),
        }
    };
    let v4 = target.pod_ips.iter().find_map(|n| match n.ip() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    });
    let v6_src = target.pod_ips.iter().find_map(|n| match n.ip() {
        IpAddr::V6(a) if !super::is_link_local(n.ip()) => Some(a),
        _ => None,
    });
    // The NS goes out from the unspecified address, as duplicate address detection's does,
    // when the host end does no DAD (Calico sets accept_dad=0 on it, dataplane_linux.go): the
    // kernel then answers to all-nodes and records nothing (net/ipv6/ndisc.c `ndisc_recv_ns`,
    // `dad`). From the pod's address it would record the pod's entry and confirm it 5 s later
    // with an NS of its own, which makes the pod's kernel learn the host end's link-local. With
    // DAD on, the host's address may be tentative, and a DAD NS for it would fail its DAD
    // (`ndisc_recv_ns`: addrconf_dad_failure, leaving it dadfailed for good): the pod's
    // address is used then. DAD is off only where the device's accept_dad and `all`'s are
    // both below 1, and `::` is used only for an address seen out of DAD. A tentative address
    // answers nothing until its DAD ends (~1 s): not sent, a warning (no broken path yet).
    let below_1 = |v: Option<&str>| {
        v.and_then(|v| v.trim().parse::<i64>().ok())
            .is_some_and(|n| n < 1)
    };
    let mut v6_tentative = false;
    let v6 = v6_src.map(|src| {
        let target = v6_target(pod, link.index, host, host_mac);
        let dad = v6_dad(veth.index, target);
        let dev = veth_sysctl("ipv6", "conf", "accept_dad");
        let dad_off = below_1(dev.as_deref()) && below_1(dad.all_accept_dad.as_deref());
        v6_tentative = dad.addr == AddrState::Tentative;
        let src = if dad_off && dad.addr == AddrState::Ready {
            Ipv6Addr::UNSPECIFIED
        } else {
            src
        };
        (src, target)
    });
    if v4.is_none() && v6.is_none() {
        return None;
    }
    // A broadcast request is answered by proxy only after a random wait of up to the host
    // end's proxy_delay, unless it is 0 (net/ipv4/arp.c `arp_process`, pneigh_enqueue); one to
    // the host end's own MAC (PACKET_HOST) is answered at once. Calico sets 0
    // (dataplane_linux.go) but only warns when it cannot; the kernel's default is 0.8 s.
    let v4_unicast = v4.is_some()
        && veth_sysctl("ipv4", "neigh", "proxy_delay").is_some_and(|d| d.trim() != "0");
    Some(ProbePlan {
        ifname: link.name.clone(),
        ifindex: link.index,
        pod_mac,
        host_mac,
        host_veth: veth.name.clone(),
        v4,
        v4_unicast,
        v6,
        v6_tentative,
        timeout,
    })
}

/// The IPv6 neighbour the pod sends to: the link-local gateway of its IPv6 default route on the
/// pod interface, else the host end's link-local, else the EUI-64 one of the host end's MAC
/// (Calico's fe80::ecee:eeff:feee:eeee; dataplane_linux.go reads it back from the host end).
fn v6_target(pod: &PodView, pod_index: u32, host: &HostView, host_mac: [u8; 6]) -> Ipv6Addr {
    let from_route = pod
        .routes
        .iter()
        .filter(|r| r.v6 && r.is_default())
        .flat_map(|r| r.paths())
        .find_map(|p| match (p.gateway, p.oif) {
            (Some(IpAddr::V6(g)), Some(oif))
                if oif == pod_index && super::is_link_local(IpAddr::V6(g)) =>
            {
                Some(g)
            }
            _ => None,
        });
    from_route
        .or_else(|| host.veth_v6_link_local.first().copied())
        .unwrap_or_else(|| eui64_link_local(host_mac))
}

pub fn eui64_link_local(m: [u8; 6]) -> Ipv6Addr {
    let w = |hi: u8, lo: u8| (u16::from(hi) << 8) | u16::from(lo);
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        w(m[0] ^ 0x02, m[1]),
        w(m[2], 0xff),
        w(0xfe, m[3]),
        w(m[4], m[5]),
    )
}

/// ff02::1:ffXX:XXXX for the target's last 24 bits (RFC 4291 2.7.1).
pub fn solicited_node(t: Ipv6Addr) -> Ipv6Addr {
    let o = t.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        (u16::from(o[14]) << 8) | u16::from(o[15]),
    )
}

/// 33:33 and the multicast address's last 32 bits (RFC 2464 7).
fn multicast_mac(g: Ipv6Addr) -> [u8; 6] {
    let o = g.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Sockets per child that closes them (a scan of many pods hands them over in batches, well
/// below the default limit of 1024 open files).
const CLOSE_BATCH: usize = 128;

/// Where the probe's packet sockets go when it is done with them. Closing the last reference
/// to a packet socket waits for an RCU grace period (net/packet/af_packet.c `packet_release`:
/// `synchronize_net()`, ~10 ms), and a process's files are closed before its parent learns
/// that it exited, so ADD would wait for it even without a close of its own. A forked child
/// takes the last references instead and drops them after we have dropped ours: nobody waits
/// for it (a long-running caller reaps it from a thread of its own).
#[derive(Default)]
pub struct Closer {
    socks: Vec<OwnedFd>,
}

impl Closer {
    pub fn add(&mut self, socks: Vec<OwnedFd>) {
        self.socks.extend(socks);
        if self.socks.len() >= CLOSE_BATCH {
            self.flush();
        }
    }

    /// Hands the sockets held to a child that closes them.
    pub fn flush(&mut self) {
        let socks = std::mem::take(&mut self.socks);
        if !socks.is_empty() {
            close_in_child(socks);
        }
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Forks a child that holds `socks` until we have closed our copies, then exits, dropping the
/// last references (and paying for them). Everything the child does is async-signal-safe
/// (close, read, _exit: we may be multi-threaded). Without a child (fork fails) the sockets
/// are closed here, which only costs time.
fn close_in_child(socks: Vec<OwnedFd>) {
    let mut go = [0i32; 2];
    let mut ready = [0i32; 2];
    // SAFETY: pipe2 fills the arrays with two fresh fds each on success.
    let ok = unsafe {
        libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) == 0
            && libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) == 0
    };
    if !ok {
        return;
    }
    // The child keeps only the sockets and the read end of `go`; computed before the fork,
    // which must not allocate in the child.
    let mut keep: Vec<i32> = socks.iter().map(|s| s.as_raw_fd()).collect();
    keep.push(go[0]);
    let gaps = gaps_between(keep);
    // SAFETY: fork; the child below only makes raw syscalls and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Child: close everything else first (stdout above all: the runtime reads it until
        // every writer is gone), tell the parent, wait for it to drop its copies, exit.
        for &(first, last) in &gaps {
            close_range(first, last);
        }
        let mut b = 0u8;
        // SAFETY: raw syscalls on fds this process owns; _exit never returns.
        unsafe {
            while libc::read(go[0], &mut b as *mut u8 as *mut libc::c_void, 1) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
            libc::_exit(0);
        }
    }
    // SAFETY (both blocks): closing fds this process owns.
    unsafe {
        libc::close(go[0]);
        libc::close(ready[1]);
    }
    if pid < 0 {
        // SAFETY: as above.
        unsafe {
            libc::close(go[1]);
            libc::close(ready[0]);
        }
        return;
    }
    // Wait (microseconds) until the child has closed its copy of stdout and the rest, so that
    // the runtime's read of our stdout never waits for the child.
    let mut b = 0u8;
    // SAFETY: reading one byte from our own pipe; EOF when the child closed its end.
    unsafe {
        while libc::read(ready[0], &mut b as *mut u8 as *mut libc::c_void, 1) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        libc::close(ready[0]);
    }
    // Our copies first (cheap: the child still holds them), then let the child go.
    drop(socks);
    // SAFETY: as above.
    unsafe {
        libc::close(go[1]);
    }
    // Reap it without waiting for it: a short-lived caller exits first (then init reaps it).
    let _ = std::thread::Builder::new()
        .name("probe-reaper".into())
        .stack_size(16 * 1024)
        .spawn(move || {
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        });
}

/// The fd ranges around `keep` (every fd but those), for the child to close.
fn gaps_between(mut keep: Vec<i32>) -> Vec<(u32, u32)> {
    keep.sort_unstable();
    let mut gaps = Vec::with_capacity(keep.len() + 1);
    let mut from = 0u32;
    for fd in keep.into_iter().filter_map(|fd| u32::try_from(fd).ok()) {
        // A kept fd 0 (stdin closed) or two adjacent ones leave no gap.
        if fd > from {
            gaps.push((from, fd - 1));
        }
        from = from.max(fd.saturating_add(1));
    }
    gaps.push((from, u32::MAX));
    gaps
}

/// close_range(2) (Linux 5.9), else close() one by one up to 4096: async-signal-safe both.
fn close_range(first: u32, last: u32) {
    if first > last {
        return;
    }
    // SAFETY: closing fds of this (child) process.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if r != 0 {
        for fd in first..=last.min(4095) {
            // SAFETY: as above.
            unsafe { libc::close(fd as i32) };
        }
    }
}

/// Runs the probe inside the pod's namespace. Never fails: a probe that cannot be carried out
/// says so in its outcome (`Answer::NotRun`). Bounded by `deadline` and by the plan's timeout.
/// Its sockets go to `closer`.
pub fn run(
    netns_path: &str,
    plan: ProbePlan,
    deadline: Deadline,
    closer: &mut Closer,
) -> ProbeOutcome {
    let mut outcome = ProbeOutcome {
        ifname: plan.ifname.clone(),
        host_veth: plan.host_veth.clone(),
        pod_mac: plan.pod_mac.to_vec(),
        host_mac: plan.host_mac.to_vec(),
        timeout_ms: plan.timeout.as_millis() as u64,
        asked_timeout_ms: plan.timeout.as_millis() as u64,
        families: vec![],
    };
    // The probe takes at most half the time left to the caller's deadline: ADD still has the
    // node checks to read after it, and a probeTimeoutMs too long for timeoutMs would
    // otherwise end ADD in a timeout naming something else (the probe's finding lost).
    let half = deadline.remaining().unwrap_or_default() / 2;
    let mut plan = plan;
    plan.timeout = plan.timeout.min(half / u32::from(ATTEMPTS));
    outcome.timeout_ms = plan.timeout.as_millis() as u64;
    let specs = family_specs(&plan);
    if plan.timeout < Duration::from_millis(1) {
        outcome.families = not_run(&specs, "no time left within the call's timeoutMs");
        return outcome;
    }
    // Every attempt's wait, and a little for entering the namespace and the sockets.
    let own =
        Deadline::after(plan.timeout * u32::from(ATTEMPTS) + Duration::from_millis(100).min(half));
    let bound = if own.instant() < deadline.instant() {
        own
    } else {
        deadline
    };
    let inner = plan.clone();
    match super::netns::in_netns(netns_path, bound, move |d| Ok(probe_here(&inner, d))) {
        Ok(Ok((families, socks))) => {
            outcome.families = families;
            closer.add(socks);
        }
        Ok(Err(problem)) => {
            outcome.families = not_run(&specs, &format!("{} {}", problem.path, problem.found))
        }
        Err(e) => outcome.families = not_run(&specs, &e.to_string()),
    }
    outcome
}

fn not_run(specs: &[FamilyProbe], why: &str) -> Vec<FamilyProbe> {
    specs
        .iter()
        .cloned()
        .map(|mut f| {
            if f.answer != Answer::HostTentative {
                f.answer = Answer::NotRun(why.to_string());
            }
            f
        })
        .collect()
}

/// The families of a plan, before anything is sent.
fn family_specs(plan: &ProbePlan) -> Vec<FamilyProbe> {
    let mut out = vec![];
    if let Some(src) = plan.v4 {
        out.push(FamilyProbe {
            v6: false,
            target: IpAddr::V4(GATEWAY_V4),
            source: IpAddr::V4(src),
            dst_mac: if plan.v4_unicast {
                plan.host_mac.to_vec()
            } else {
                vec![0xff; 6]
            },
            sent: 0,
            answer: Answer::Nothing,
        });
    }
    if let Some((src, target)) = plan.v6 {
        out.push(FamilyProbe {
            v6: true,
            target: IpAddr::V6(target),
            source: IpAddr::V6(src),
            dst_mac: multicast_mac(solicited_node(target)).to_vec(),
            sent: 0,
            answer: if plan.v6_tentative {
                Answer::HostTentative
            } else {
                Answer::Nothing
            },
        });
    }
    out
}

/// One family in flight.
struct Flight {
    spec: FamilyProbe,
    sock: Option<OwnedFd>,
    request: Vec<u8>,
    others: Vec<Vec<u8>>,
    done: bool,
}

/// The probe, from the calling thread's namespace (the pod's). Both families are sent at once
/// and waited for together: the worst case is `ATTEMPTS` timeouts, not one per family.
fn probe_here(plan: &ProbePlan, deadline: Deadline) -> (Vec<FamilyProbe>, Vec<OwnedFd>) {
    let mut flights: Vec<Flight> = family_specs(plan)
        .into_iter()
        .map(|spec| {
            let (request, proto) = if spec.v6 {
                let (src, target) = plan
                    .v6
                    .unwrap_or((Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED));
                (
                    neighbor_solicitation(plan.pod_mac, src, target),
                    libc::ETH_P_IPV6,
                )
            } else {
                let src = plan.v4.unwrap_or(Ipv4Addr::UNSPECIFIED);
                (arp_request(plan.pod_mac, src, GATEWAY_V4), libc::ETH_P_ARP)
            };
            let done = spec.answer == Answer::HostTentative;
            let mut f = Flight {
                spec,
                sock: None,
                request,
                others: vec![],
                done,
            };
            if done {
                return f;
            }
            let filter = if f.spec.v6 {
                NA_FILTER
            } else {
                ARP_REPLY_FILTER
            };
            match open_bound(plan.ifindex, proto as u16, filter) {
                Ok(s) => f.sock = Some(s),
                Err(e) => {
                    f.spec.answer =
                        Answer::NotRun(format!("open a packet socket on {}: {e}", plan.ifname));
                    f.done = true;
                }
            }
            f
        })
        .collect();
    for attempt in 1..=ATTEMPTS {
        let started = Instant::now();
        let until = (started + plan.timeout).min(deadline.instant());
        for f in flights.iter_mut().filter(|f| !f.done) {
            // The IPv4 retry goes to the host end's MAC, as the pod's kernel re-probes: a
            // broadcast request is answered after a random wait of up to the host end's
            // neigh proxy_delay (net/ipv4/arp.c `arp_process`: pneigh_enqueue unless the
            // frame was PACKET_HOST or proxy_delay is 0). Calico sets it to 0
            // (dataplane_linux.go) but only warns when it cannot, and the default is 0.8 s:
            // a slow answer there is no broken path.
            let (proto, dst) = if f.spec.v6 {
                (libc::ETH_P_IPV6, f.spec.dst_mac.clone())
            } else if attempt > 1 || plan.v4_unicast {
                (libc::ETH_P_ARP, plan.host_mac.to_vec())
            } else {
                (libc::ETH_P_ARP, f.spec.dst_mac.clone())
            };
            let Some(sock) = &f.sock else { continue };
            match send_to(sock, plan.ifindex, proto as u16, &dst, &f.request) {
                Ok(()) => f.spec.sent = attempt,
                Err(e) => {
                    f.spec.answer = Answer::NotRun(format!("send on {}: {e}", plan.ifname));
                    f.done = true;
                }
            }
        }
        wait_replies(plan, &mut flights, attempt, started, until);
        if flights.iter().all(|f| f.done) || Instant::now() >= deadline.instant() {
            break;
        }
    }
    let mut socks = Vec::new();
    let families = flights
        .into_iter()
        .map(|mut f| {
            if !f.done {
                f.spec.answer = if f.others.is_empty() {
                    Answer::Nothing
                } else {
                    Answer::OtherMacs(f.others)
                };
            }
            socks.extend(f.sock);
            f.spec
        })
        .collect();
    // Closed elsewhere (see [`Closer`]): closing them here would hold up the answer ~10 ms.
    (families, socks)
}

/// Reads replies until every pending family has its answer or `until` passes.
fn wait_replies(
    plan: &ProbePlan,
    flights: &mut [Flight],
    attempt: u8,
    started: Instant,
    until: Instant,
) {
    let mut reads = 0usize;
    let max_reads = MAX_READS * flights.len();
    loop {
        let pending: Vec<usize> = (0..flights.len()).filter(|i| !flights[*i].done).collect();
        if pending.is_empty() || reads >= max_reads {
            return;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let mut fds: Vec<libc::pollfd> = pending
            .iter()
            .filter_map(|i| flights[*i].sock.as_ref())
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Rounded up: a sub-millisecond remainder must not spin.
        let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        for (slot, i) in pending.iter().enumerate() {
            if fds.get(slot).is_none_or(|p| p.revents & libc::POLLIN == 0) {
                continue;
            }
            let f = &mut flights[*i];
            // Everything queued now, without blocking (the socket is non-blocking).
            while let Some(sock) = &f.sock {
                let Some((frame, from_mac)) = recv(sock) else {
                    break;
                };
                reads += 1;
                let answered_by = if f.spec.v6 {
                    match (f.spec.target, f.spec.source) {
                        (IpAddr::V6(t), _) => na_sender(&frame, t, &from_mac),
                        _ => None,
                    }
                } else {
                    match f.spec.source {
                        IpAddr::V4(s) => arp_reply_sender(&frame, GATEWAY_V4, s),
                        IpAddr::V6(_) => None,
                    }
                };
                if let Some(mac) = answered_by {
                    if mac == plan.host_mac {
                        f.spec.answer = Answer::Host {
                            attempt,
                            micros: started.elapsed().as_micros() as u64,
                        };
                        f.done = true;
                        break;
                    }
                    if !f.others.contains(&mac.to_vec()) && f.others.len() < MAX_OTHER_MACS {
                        f.others.push(mac.to_vec());
                    }
                }
                if reads >= max_reads {
                    break;
                }
            }
        }
    }
}

/// An Ethernet/IPv4 ARP request (RFC 826), without the Ethernet header (SOCK_DGRAM adds it).
pub fn arp_request(sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&tpa.octets());
    p
}

/// The sender MAC of an ARP reply for `target` addressed to `to`, if `frame` is one.
pub fn arp_reply_sender(frame: &[u8], target: Ipv4Addr, to: Ipv4Addr) -> Option<[u8; 6]> {
    if frame.len() < 28 || frame[..6] != [0, 1, 0x08, 0x00, 6, 4] || frame[6..8] != [0, 2] {
        return None;
    }
    if frame[14..18] != target.octets() || frame[24..28] != to.octets() {
        return None;
    }
    frame[8..14].try_into().ok()
}

/// An IPv6 neighbor solicitation (RFC 4861 4.3) for `target` from `src`, to the target's
/// solicited-node address, hop limit 255, with the source link-layer address option unless the
/// source is `::` (which must not carry one, RFC 4861 7.1.1).
pub fn neighbor_solicitation(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst = solicited_node(target);
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&target.octets());
    if !src.is_unspecified() {
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&mac);
    }
    let sum = icmpv6_checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut p = Vec::with_capacity(40 + icmp.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 255]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&icmp);
    p
}

/// The one's-complement checksum over the IPv6 pseudo-header and the ICMPv6 message
/// (RFC 4443 2.3, RFC 8200 8.1).
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            sum += u32::from(w);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The MAC that answered, if `frame` (from the IPv6 header on) is a neighbor advertisement for
/// `target`: its target link-layer address option, else the frame's source MAC.
pub fn na_sender(frame: &[u8], target: Ipv6Addr, from_mac: &[u8]) -> Option<[u8; 6]> {
    if frame.len() < 64 || frame[0] >> 4 != 6 || frame[6] != 58 || frame[7] != 255 {
        return None;
    }
    let icmp = &frame[40..];
    if icmp[0] != 136 || icmp[1] != 0 || icmp[8..24] != target.octets() {
        return None;
    }
    let mut opts = &icmp[24..];
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            break;
        }
        if opts[0] == 2 && len >= 8 {
            return opts[2..8].try_into().ok();
        }
        opts = &opts[len..];
    }
    from_mac.try_into().ok()
}

/// Classic BPF: ARP replies (op 2) only, so the socket queues nothing else.
const ARP_REPLY_FILTER: &[libc::sock_filter] = &[
    bpf(0x28, 0, 0, 6), // ldh [6]: op
    bpf(0x15, 0, 1, 2), // jeq #2
    bpf(0x06, 0, 0, 0xffff),
    bpf(0x06, 0, 0, 0),
];

/// Classic BPF: ICMPv6 (next header 58, no extension headers, as NDP has none) neighbor
/// advertisements (type 136) only.
const NA_FILTER: &[libc::sock_filter] = &[
    bpf(0x30, 0, 0, 6),  // ldb [6]: next header
    bpf(0x15, 0, 3, 58), // jeq #58
    bpf(0x30, 0, 0, 40), // ldb [40]: ICMPv6 type
    bpf(0x15, 0, 1, 136),
    bpf(0x06, 0, 0, 0xffff),
    bpf(0x06, 0, 0, 0),
];

const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn sockaddr_ll(ifindex: u32, proto: u16, mac: &[u8]) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = proto.to_be();
    a.sll_ifindex = ifindex as i32;
    a.sll_halen = mac.len().min(8) as u8;
    a.sll_addr[..mac.len().min(8)].copy_from_slice(&mac[..mac.len().min(8)]);
    a
}

/// A non-blocking SOCK_DGRAM packet socket that receives only `proto` frames on `ifindex` that
/// pass `filter`. It is opened with protocol 0 (receiving nothing) and bound only after the
/// filter is attached, so no other frame is ever queued on it.
fn open_bound(ifindex: u32, proto: u16, filter: &[libc::sock_filter]) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, valid for the call; the kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let addr = sockaddr_ll(ifindex, proto, &[]);
    // SAFETY: `addr` is a valid sockaddr_ll of the given size.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

fn send_to(
    sock: &OwnedFd,
    ifindex: u32,
    proto: u16,
    dst: &[u8],
    payload: &[u8],
) -> std::io::Result<()> {
    let addr = sockaddr_ll(ifindex, proto, dst);
    // SAFETY: buffer and address are valid for the call.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            payload.as_ptr() as *const libc::c_void,
            payload.len(),
            0,
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One queued frame (from the network header on) and its source MAC; `None` when none is
/// queued. Our own outgoing frames are skipped.
fn recv(sock: &OwnedFd) -> Option<(Vec<u8>, Vec<u8>)> {
    loop {
        let mut buf = vec![0u8; 1500];
        // SAFETY: plain data; all-zero is valid.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buffer, address and length are valid for the call.
        let n = unsafe {
            libc::recvfrom(
                sock.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
                &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut len,
            )
        };
        if n < 0 {
            return None;
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        buf.truncate(n as usize);
        let halen = usize::from(from.sll_halen).min(8);
        return Some((buf, from.sll_addr[..halen].to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_request_layout() {
        let p = arp_request([2, 0, 0, 0, 0, 5], "10.0.0.5".parse().unwrap(), GATEWAY_V4);
        assert_eq!(p.len(), 28);
        assert_eq!(&p[6..8], &[0, 1]);
        assert_eq!(&p[14..18], &[10, 0, 0, 5]);
        assert_eq!(&p[24..28], &[169, 254, 1, 1]);
    }

    #[test]
    fn arp_reply_is_recognised_only_for_the_gateway_and_us() {
        let me: Ipv4Addr = "10.0.0.5".parse().unwrap();
        let mut r = arp_request([0xee; 6], GATEWAY_V4, me);
        r[7] = 2;
        assert_eq!(arp_reply_sender(&r, GATEWAY_V4, me), Some([0xee; 6]));
        assert_eq!(
            arp_reply_sender(&r, GATEWAY_V4, "10.0.0.6".parse().unwrap()),
            None
        );
        r[7] = 1;
        assert_eq!(arp_reply_sender(&r, GATEWAY_V4, me), None);
        assert_eq!(arp_reply_sender(&r[..20], GATEWAY_V4, me), None);
    }

    #[test]
    fn calico_link_local_and_its_solicited_node_group() {
        let ll = eui64_link_local([0xee; 6]);
        assert_eq!(ll, "fe80::ecee:eeff:feee:eeee".parse::<Ipv6Addr>().unwrap());
        let g = solicited_node(ll);
        assert_eq!(g, "ff02::1:ffee:eeee".parse::<Ipv6Addr>().unwrap());
        assert_eq!(multicast_mac(g), [0x33, 0x33, 0xff, 0xee, 0xee, 0xee]);
    }

    #[test]
    fn neighbor_solicitation_checksums_to_zero() {
        let src: Ipv6Addr = "fd00:10::5".parse().unwrap();
        let t = eui64_link_local([0xee; 6]);
        let p = neighbor_solicitation([2, 0, 0, 0, 0, 5], src, t);
        assert_eq!(p.len(), 72);
        assert_eq!((p[6], p[7]), (58, 255));
        assert_eq!(&p[24..40], &solicited_node(t).octets());
        // A correct checksum makes the sum over pseudo-header and message 0 (i.e. !0xffff).
        assert_eq!(icmpv6_checksum(src, solicited_node(t), &p[40..]), 0);
        assert_eq!(&p[40 + 24..40 + 26], &[1, 1]);
        // From ::, as DAD: no source link-layer option.
        let p = neighbor_solicitation([2, 0, 0, 0, 0, 5], Ipv6Addr::UNSPECIFIED, t);
        assert_eq!(p.len(), 64);
        assert_eq!(
            icmpv6_checksum(Ipv6Addr::UNSPECIFIED, solicited_node(t), &p[40..]),
            0
        );
    }

    #[test]
    fn neighbor_advertisement_names_its_target_lladdr() {
        let t = eui64_link_local([0xee; 6]);
        let mut na = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
        na.extend_from_slice(&t.octets());
        na.extend_from_slice(&"fd00:10::5".parse::<Ipv6Addr>().unwrap().octets());
        na.extend_from_slice(&[136, 0, 0, 0, 0x60, 0, 0, 0]);
        na.extend_from_slice(&t.octets());
        na.extend_from_slice(&[2, 1, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee]);
        assert_eq!(na_sender(&na, t, &[1; 6]), Some([0xee; 6]));
        // Without the option: the frame's source.
        assert_eq!(na_sender(&na[..64], t, &[1; 6]), Some([1; 6]));
        assert_eq!(na_sender(&na, "fe80::1".parse().unwrap(), &[1; 6]), None);
        na[7] = 64; // not hop limit 255: not a valid NA (RFC 4861 7.1.2)
        assert_eq!(na_sender(&na, t, &[1; 6]), None);
    }

    #[test]
    fn plan_needs_the_pod_interface_up_and_both_macs() {
        let fx = crate::checks::fixtures::healthy_dual();
        let p = plan(
            &fx.target,
            fx.pod.as_ref().ok(),
            &fx.host,
            Duration::from_millis(50),
        )
        .expect("plan");
        assert!(p.v4.is_some());
        let (src, t) = p.v6.expect("v6");
        assert_eq!(t, crate::checks::fixtures::LL.parse::<Ipv6Addr>().unwrap());
        // The fixture's host end has no accept_dad reading: the pod's address.
        assert_eq!(src, "fd00:10::5".parse::<Ipv6Addr>().unwrap());
        let mut fx = crate::checks::fixtures::healthy_dual();
        fx.host.sysctls.push(crate::inspect::SysctlRead {
            key: format!("net.ipv6.conf.{}.accept_dad", crate::checks::fixtures::VETH),
            value: Ok("0".into()),
        });
        let ready = |_: u32, _: Ipv6Addr| V6Dad {
            all_accept_dad: Some("0".into()),
            addr: AddrState::Ready,
        };
        let p = plan_with(
            &fx.target,
            fx.pod.as_ref().ok(),
            &fx.host,
            Duration::ZERO,
            &ready,
            &|_| None,
        )
        .expect("plan");
        assert_eq!(p.v6.map(|v| v.0), Some(Ipv6Addr::UNSPECIFIED));
        let mut fx = crate::checks::fixtures::healthy_v4();
        fx.pod_mut().link.as_mut().unwrap().up = false;
        assert!(plan(&fx.target, fx.pod.as_ref().ok(), &fx.host, Duration::ZERO).is_none());
        let mut fx = crate::checks::fixtures::healthy_v4();
        fx.host.veth_by_name = None;
        fx.host.veth_by_peer = None;
        assert!(plan(&fx.target, fx.pod.as_ref().ok(), &fx.host, Duration::ZERO).is_none());
    }

    #[test]
    fn a_dad_ns_only_for_an_address_out_of_dad_where_dad_is_off_everywhere() {
        let mut fx = crate::checks::fixtures::healthy_dual();
        fx.host.sysctls.push(crate::inspect::SysctlRead {
            key: format!("net.ipv6.conf.{}.accept_dad", crate::checks::fixtures::VETH),
            value: Ok("0".into()),
        });
        let pod_ip: Ipv6Addr = "fd00:10::5".parse().unwrap();
        for (all, addr, src, tentative) in [
            ("0", AddrState::Ready, Ipv6Addr::UNSPECIFIED, false),
            // all.accept_dad=1 makes the device do DAD whatever its own says.
            ("1", AddrState::Ready, pod_ip, false),
            ("1", AddrState::Tentative, pod_ip, true),
            ("0", AddrState::Tentative, pod_ip, true),
            ("0", AddrState::Optimistic, pod_ip, false),
            ("0", AddrState::Unknown, pod_ip, false),
            ("0", AddrState::DadFailed, pod_ip, false),
        ] {
            let dad = move |_: u32, _: Ipv6Addr| V6Dad {
                all_accept_dad: Some(all.into()),
                addr,
            };
            let p = plan_with(
                &fx.target,
                fx.pod.as_ref().ok(),
                &fx.host,
                Duration::ZERO,
                &dad,
                &|_| None,
            )
            .expect("plan");
            assert_eq!(p.v6.map(|v| v.0), Some(src), "{all} {addr:?}");
            assert_eq!(p.v6_tentative, tentative, "{all} {addr:?}");
            let spec = family_specs(&p);
            assert_eq!(
                spec[1].answer == Answer::HostTentative,
                tentative,
                "{all} {addr:?}"
            );
        }
    }

    #[test]
    fn the_child_closes_every_fd_but_the_kept_ones() {
        assert_eq!(
            gaps_between(vec![7, 5]),
            vec![(0, 4), (6, 6), (8, u32::MAX)]
        );
        // A socket at fd 0 (stdin closed): the old loop closed 0..=u32::MAX, every kept fd
        // with it, so the parent paid for the last close after all.
        assert_eq!(gaps_between(vec![0, 3]), vec![(1, 2), (4, u32::MAX)]);
        assert_eq!(gaps_between(vec![3, 4]), vec![(0, 2), (5, u32::MAX)]);
    }

    #[test]
    fn if_inet6_flags() {
        let ll = eui64_link_local([0xee; 6]);
        // As the kernel prints it: address, ifindex, plen, scope, flags, name.
        let line = |index: &str, flags: &str| {
            format!("fe80000000000000eceeeefffeeeeeee {index} 40 20 {flags}     cali1\n")
        };
        assert_eq!(addr_state(&line("0b", "80"), 11, ll), AddrState::Ready);
        assert_eq!(addr_state(&line("0b", "c0"), 11, ll), AddrState::Tentative);
        assert_eq!(addr_state(&line("0b", "c8"), 11, ll), AddrState::DadFailed);
        assert_eq!(addr_state(&line("0b", "c4"), 11, ll), AddrState::Optimistic);
        assert_eq!(addr_state(&line("0c", "80"), 11, ll), AddrState::Absent);
        assert_eq!(addr_state("", 11, ll), AddrState::Absent);
        // A cut last line: not known to be absent.
        assert_eq!(
            addr_state("fe80000000000000ecee", 11, ll),
            AddrState::Unknown
        );
    }

    #[test]
    fn arp_goes_to_the_host_mac_only_where_proxy_delay_would_hold_a_broadcast() {
        let key = format!(
            "net.ipv4.neigh.{}.proxy_delay",
            crate::checks::fixtures::VETH
        );
        for (value, unicast) in [(None, false), (Some("0"), false), (Some("80"), true)] {
            let mut fx = crate::checks::fixtures::healthy_v4();
            if let Some(v) = value {
                fx.host.sysctls.push(crate::inspect::SysctlRead {
                    key: key.clone(),
                    value: Ok(v.into()),
                });
            }
            let p = plan(&fx.target, fx.pod.as_ref().ok(), &fx.host, Duration::ZERO).expect("plan");
            assert_eq!(p.v4_unicast, unicast, "{value:?}");
            let spec = &family_specs(&p)[0];
            let want = if unicast {
                p.host_mac.to_vec()
            } else {
                vec![0xff; 6]
            };
            assert_eq!(spec.dst_mac, want, "{value:?}");
        }
    }
}
