//! A tiny OTLP/HTTP receiver for `benches/load.sh` and `benches/soak.sh`, loopback only.
//!
//! `otlp-sink ok <port>` accepts every export (reads the body, answers 200 with an empty
//! protobuf `Export*ServiceResponse`) and discards it, counting requests on stderr on exit.
//! `otlp-sink hang <port>` accepts connections and never answers (at most 256 held open; the
//! oldest is dropped beyond), the "black-holed collector" of the outage soak.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(4318);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            eprintln!("otlp-sink mode={mode} port={port}");
            match mode.as_str() {
                "ok" => accept(listener).await,
                "hang" => hang(listener).await,
                _ => {
                    eprintln!("usage: otlp-sink <ok|hang> <port>");
                    std::process::exit(2)
                }
            }
        });
}

async fn accept(listener: tokio::net::TcpListener) {
    let exports = Arc::new(AtomicU64::new(0));
    let counted = exports.clone();
    let serve = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let exports = counted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let exports = exports.clone();
                    async move {
                        // Read and discard the export (bounded by what the exporter sends).
                        let _ = req.into_body().collect().await;
                        exports.fetch_add(1, Ordering::Relaxed);
                        let response = http::Response::builder()
                            .header("content-type", "application/x-protobuf")
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("otlp-sink exports={}", exports.load(Ordering::Relaxed));
}

async fn hang(listener: tokio::net::TcpListener) {
    let mut held = VecDeque::new();
    let serve = async move {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                if held.len() == 256 {
                    held.pop_front();
                }
                held.push_back(stream);
            }
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
