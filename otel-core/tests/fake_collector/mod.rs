//! A fake OTLP/HTTP collector on 127.0.0.1 (ephemeral port): answers every request
//! `200 OK` with an empty protobuf body (or, [`FakeCollector::traces_only`], `404` on
//! `/v1/metrics` like a traces-only backend) and keeps what it received (path, content type,
//! body) for the test to read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A running fake collector.
pub struct FakeCollector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeCollector {
    /// Starts listening; each connection is served on a thread of its own.
    pub fn start() -> FakeCollector {
        Self::answering(false)
    }

    /// A collector without a metrics pipeline: `404 Not Found` on `/v1/metrics`.
    pub fn traces_only() -> FakeCollector {
        Self::answering(true)
    }

    fn answering(refuse_metrics: bool) -> FakeCollector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let store = store.clone();
                std::thread::spawn(move || serve(stream, &store, refuse_metrics));
            }
        });
        FakeCollector { addr, received }
    }

    /// The base endpoint, `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received on `path` so far.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Serves HTTP/1.1 requests on one connection until the client closes it.
fn serve(stream: TcpStream, store: &Mutex<Vec<Received>>, refuse_metrics: bool) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut content_type = None;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim().to_owned();
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-type" => content_type = Some(value),
                    "content-length" => length = value.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer: &[u8] = if refuse_metrics && path == "/v1/metrics" {
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        };
        store.lock().unwrap().push(Received {
            path,
            content_type,
            body,
        });
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}
