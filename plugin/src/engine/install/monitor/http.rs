//! The metrics endpoint's HTTP server: one thread, poll(2), every connection bounded.
//!
//! Why not a server crate: tiny_http (the first choice) gives every connection a thread of its
//! own and reads it without a timeout, and a header line without a length bound, so idle
//! connections grow threads without end and one long header line grows the process past the
//! DaemonSet's memory limit. What a scraper and a kubelet probe need is a GET, answered and
//! closed: here at most [`MAX_CONNS`] connections are open at a time (a new one evicts the
//! oldest, so idle ones cannot lock a scraper out), each has [`CONN_DEADLINE`] to send its
//! request head of at most [`MAX_HEAD`] bytes and take its answer, and nothing else is read.
//! Every answer says `Connection: close` (HTTP/1.1 allows it; Prometheus reconnects).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Connections open at once; beyond it the oldest is closed.
pub const MAX_CONNS: usize = 32;
/// A request head (request line and headers) longer than this is answered 431 and closed.
/// Prometheus' and the kubelet's are a few hundred bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// From accept to close: request head, answer and the lingering close.
pub const CONN_DEADLINE: Duration = Duration::from_secs(10);
/// After the answer, what the client still sends (a request body) is read and dropped, up to
/// this, so that closing does not reset the connection before the client read the answer.
const MAX_DRAIN: usize = 64 * 1024;

/// An answer: status, content type, body, and whether the request was a HEAD (no body sent).
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// A request as far as the answer depends on it.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
}

enum Phase {
    Reading,
    Writing,
    Draining,
}

struct Conn {
    stream: TcpStream,
    opened: Instant,
    phase: Phase,
    head: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    drained: usize,
}

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub fn bind(addr: SocketAddr) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Server { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop()`, looking at it at least every `poll` interval.
    pub fn serve(
        &self,
        poll: Duration,
        stop: impl Fn() -> bool,
        answer: impl Fn(&Request) -> Answer,
    ) {
        let mut conns: Vec<Conn> = Vec::new();
        while !stop() {
            let mut fds = Vec::with_capacity(conns.len() + 1);
            fds.push(libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            for c in &conns {
                let events = match c.phase {
                    Phase::Writing => libc::POLLOUT,
                    Phase::Reading | Phase::Draining => libc::POLLIN,
                };
                fds.push(libc::pollfd {
                    fd: c.stream.as_raw_fd(),
                    events,
                    revents: 0,
                });
            }
            let ms = poll.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: `fds` is a valid array of fds.len() pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                // EINTR (SIGTERM): look at the stop flag; anything else: do not spin.
                if std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                    std::thread::sleep(poll);
                }
                continue;
            }
            // Connections first (their indexes are those of this poll), then new ones.
            let mut keep = Vec::with_capacity(conns.len());
            for (c, fd) in conns.into_iter().zip(fds.iter().skip(1)) {
                let mut c = c;
                let open = if fd.revents != 0 {
                    step(&mut c, &answer)
                } else {
                    true
                };
                if open && c.opened.elapsed() < CONN_DEADLINE {
                    keep.push(c);
                }
                // Dropped: closed.
            }
            conns = keep;
            if fds[0].revents != 0 {
                accept_all(&self.listener, &mut conns);
            }
        }
    }
}

fn accept_all(listener: &TcpListener, conns: &mut Vec<Conn>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if conns.len() >= MAX_CONNS {
                    // The oldest is the first: connections are kept in accept order.
                    conns.remove(0);
                }
                conns.push(Conn {
                    stream,
                    opened: Instant::now(),
                    phase: Phase::Reading,
                    head: Vec::new(),
                    out: Vec::new(),
                    written: 0,
                    drained: 0,
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // EMFILE and the like: the ones open are served, closed at their deadline, and a
            // later poll tries again; the pause keeps a listener that stays readable from
            // spinning the thread.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(50));
                return;
            }
        }
    }
}

/// Advances one connection; false: close it.
fn step(c: &mut Conn, answer: &impl Fn(&Request) -> Answer) -> bool {
    match c.phase {
        Phase::Reading => {
            let mut buf = [0u8; 2048];
            let room = MAX_HEAD + 4 - c.head.len();
            match c.stream.read(&mut buf[..room.min(2048)]) {
                Ok(0) => return false,
                Ok(k) => c.head.extend_from_slice(&buf[..k]),
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    return true
                }
                Err(_) => return false,
            }
            if let Some(end) = head_end(&c.head) {
                c.out = respond(&c.head[..end], answer);
            } else if c.head.len() > MAX_HEAD {
                c.out = response(
                    &Answer {
                        status: 431,
                        content_type: TEXT,
                        body: format!("request head over {MAX_HEAD} bytes\n"),
                    },
                    false,
                );
            } else {
                return true;
            }
            c.phase = Phase::Writing;
            // Usually the whole answer fits the socket buffer: write now.
            step(c, answer)
        }
        Phase::Writing => {
            while c.written < c.out.len() {
                match c.stream.write(&c.out[c.written..]) {
                    Ok(0) => return false,
                    Ok(k) => c.written += k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            let _ = c.stream.shutdown(Shutdown::Write);
            c.phase = Phase::Draining;
            c.out = Vec::new();
            true
        }
        Phase::Draining => {
            let mut buf = [0u8; 4096];
            match c.stream.read(&mut buf) {
                Ok(0) => false,
                Ok(k) => {
                    c.drained += k;
                    c.drained < MAX_DRAIN
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    true
                }
                Err(_) => false,
            }
        }
    }
}

/// Where the head ends (after its blank line), CRLF or bare LF.
fn head_end(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub const TEXT: &str = "text/plain; charset=utf-8";

fn respond(head: &[u8], answer: &impl Fn(&Request) -> Answer) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = std::str::from_utf8(line)
        .unwrap_or("")
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version), None) = (method, target, version, parts.next())
    else {
        return bad_request();
    };
    if !version.starts_with("HTTP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return bad_request();
    }
    let path = target.split('?').next().unwrap_or("");
    let a = answer(&Request { method, path });
    response(&a, method == "HEAD")
}

fn bad_request() -> Vec<u8> {
    response(
        &Answer {
            status: 400,
            content_type: TEXT,
            body: "bad request\n".into(),
        },
        false,
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn response(a: &Answer, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        a.status,
        reason(a.status),
        a.content_type,
        a.body.len()
    );
    if a.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(a.body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(r: &Request) -> Answer {
        Answer {
            status: if r.path == "/metrics" { 200 } else { 404 },
            content_type: TEXT,
            body: format!("{} {}\n", r.method, r.path),
        }
    }

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn answers_the_request_line_and_closes() {
        let r = text(respond(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            &ok,
        ));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Connection: close\r\n"), "{r}");
        assert!(r.contains("Content-Length: 13\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nGET /metrics\n"), "{r}");
        let h = text(respond(b"HEAD /metrics HTTP/1.0\n\n", &ok));
        assert!(
            h.starts_with("HTTP/1.1 200 OK\r\n") && h.ends_with("\r\n\r\n"),
            "{h}"
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"\xff\xfe /x HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                text(respond(bad, &ok)).starts_with("HTTP/1.1 400 "),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn head_end_with_crlf_or_lf() {
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\nHost: x\r\n"), None);
    }
}
