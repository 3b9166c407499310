//! The metrics endpoint's HTTP server: one thread, poll(2), every connection bounded.
//!
//! Why not a server crate: tiny_http (the first choice) gives every connection a thread of its
//! own and reads it without a timeout, and a header line without a length bound, so idle
//! connections grow threads without end and one long header line grows the process past the
//! DaemonSet's memory limit. What a scraper and a kubelet probe need is a GET, answered and
//! closed: here at most [`MAX_CONNS`] connections are open at a time (a new one evicts the
//! oldest, so idle ones cannot lock a scraper out), each has [`CONN_DEADLINE`] to send its
//! request head of at most [`MAX_HEAD`] bytes and take its answer, and nothing else is read.
//! Every answer says `Connection: close` (HTTP/1.1 allows it; Prometheus reconnects). The
//! request head itself is parsed by httparse (hyper's parser), not by hand.

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
            if let Some(head) = parse_head(&c.head) {
                c.out = respond(head, answer);
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

pub const TEXT: &str = "text/plain; charset=utf-8";

/// Headers a request may carry (Prometheus and the kubelet send a handful); more is a 431.
const MAX_HEADERS: usize = 64;

/// What the head says, once it is complete: `(method, target)`, or why it is refused.
type Head = Result<(String, String), Answer>;

/// The request head, parsed by httparse (hyper's parser): `None` while incomplete.
fn parse_head(b: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(b) {
        Ok(httparse::Status::Partial) => None,
        Ok(httparse::Status::Complete(_)) => {
            let method = req.method.unwrap_or_default().to_string();
            let target = req.path.unwrap_or_default().to_string();
            Some(Ok((method, target)))
        }
        Err(httparse::Error::TooManyHeaders) => Some(Err(Answer {
            status: 431,
            content_type: TEXT,
            body: format!("more than {MAX_HEADERS} headers\n"),
        })),
        Err(_) => Some(Err(bad_request_answer())),
    }
}

fn respond(head: Head, answer: &impl Fn(&Request) -> Answer) -> Vec<u8> {
    let (method, target) = match head {
        Ok(h) => h,
        Err(a) => return response(&a, false),
    };
    // httparse takes any token as a method: methods are upper case (RFC 9110 9.1 registry).
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return bad_request();
    }
    let path = target.split('?').next().unwrap_or("");
    let a = answer(&Request {
        method: &method,
        path,
    });
    response(&a, method == "HEAD")
}

fn bad_request_answer() -> Answer {
    Answer {
        status: 400,
        content_type: TEXT,
        body: "bad request\n".into(),
    }
}

fn bad_request() -> Vec<u8> {
    response(&bad_request_answer(), false)
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

    /// A complete head, answered.
    fn answer_to(head: &[u8]) -> Vec<u8> {
        respond(parse_head(head).expect("a complete head"), &ok)
    }

    #[test]
    fn answers_the_request_line_and_closes() {
        let r = text(answer_to(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Connection: close\r\n"), "{r}");
        assert!(r.contains("Content-Length: 13\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nGET /metrics\n"), "{r}");
        let h = text(answer_to(b"HEAD /metrics HTTP/1.0\n\n"));
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
            assert!(text(answer_to(bad)).starts_with("HTTP/1.1 400 "), "{bad:?}");
        }
    }

    #[test]
    fn a_head_is_complete_after_its_blank_line_crlf_or_lf() {
        assert!(parse_head(b"GET / HTTP/1.0\r\n\r\nbody").is_some());
        assert!(parse_head(b"GET / HTTP/1.0\n\n").is_some());
        assert!(parse_head(b"GET / HTTP/1.0\r\nHost: x\r\n").is_none());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        let r = answer_to(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
        assert!(text(r).starts_with("HTTP/1.1 431 "));
    }
}
