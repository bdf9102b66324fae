//! A scriptable HTTP/1.1 server on 127.0.0.1 for the HTTP source tests.
//!
//! Every request goes to the test's handler, which answers with a status, headers and a body
//! (after a delay, if it likes), or by resetting the connection. The server keeps every
//! request with its arrival time, so tests can count requests per second and requests in
//! flight on the server's side. It serves until the test process ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived, since the server started.
    pub at: Duration,
}

impl Req {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// What the handler answers.
pub enum Reply {
    /// A response.
    Send {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// The connection is reset (RST) without a response.
    Reset,
    /// Headers and the start of the body, then the connection is reset.
    BreakOff(Vec<u8>),
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(v: serde_json::Value) -> Self {
        Self::bytes(200, "application/json", v.to_string().into_bytes())
    }

    /// A status with a text body.
    pub fn status(status: u16, body: &str) -> Self {
        Self::bytes(status, "text/plain", body.as_bytes().to_vec())
    }

    /// A status with a body of some type.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self::Send {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            delay: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        if let Self::Send { headers, .. } = &mut self {
            headers.push((k.into(), v.into()));
        }
        self
    }

    /// Answers after a delay.
    pub fn after(mut self, d: Duration) -> Self {
        if let Self::Send { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<Vec<Req>>>,
    max_in_flight: Arc<AtomicUsize>,
}

struct State {
    handler: Box<Handler>,
    log: Arc<Mutex<Vec<Req>>>,
    in_flight: AtomicUsize,
    max_in_flight: Arc<AtomicUsize>,
    start: Instant,
}

impl TestServer {
    /// Starts a server answering with `handler`.
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(State {
            handler: Box::new(handler),
            log: log.clone(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.clone(),
            start: Instant::now(),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self {
            url,
            log,
            max_in_flight,
        }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    /// The most requests that were being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// The most requests that arrived within any window of `window`.
    pub fn max_per_window(&self, window: Duration) -> usize {
        // Threads log their requests in nearly, not exactly, arrival order.
        let mut times: Vec<Duration> = self.requests().iter().map(|r| r.at).collect();
        times.sort();
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| t.saturating_sub(times[i]) < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

fn serve(stream: TcpStream, state: &State) {
    // The head and the body are two writes: without this, Nagle's algorithm and the
    // client's delayed ACK hold every body back by 40 ms.
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let Some(req) = read_request(&mut reader, state.start) else {
            return;
        };
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        state.log.lock().unwrap().push(req.clone());
        let reply = (state.handler)(&req);
        let keep = write_reply(&mut stream, reply);
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>, start: Instant) -> Option<Req> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let at = start.elapsed();
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    let (path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
    let query = url::form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Some(Req {
        method,
        path: path.to_string(),
        query,
        headers,
        body,
        at,
    })
}

/// Writes a reply; false when the connection is closed after it.
fn write_reply(stream: &mut TcpStream, reply: Reply) -> bool {
    match reply {
        Reply::Send {
            status,
            headers,
            body,
            delay,
        } => {
            std::thread::sleep(delay);
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\n",
                reason(status),
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).is_ok()
                && stream.write_all(&body).is_ok()
                && stream.flush().is_ok()
        }
        Reply::Reset => {
            reset(stream);
            false
        }
        Reply::BreakOff(start) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                start.len() * 10 + 100
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&start);
            let _ = stream.flush();
            std::thread::sleep(Duration::from_millis(50));
            reset(stream);
            false
        }
    }
}

/// Makes the coming close a TCP reset (SO_LINGER 0), as a crashed server or a proxy would;
/// the caller then drops the connection.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
