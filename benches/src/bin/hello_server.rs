//! The hello-world server driven by `benches/load.sh` and `benches/soak.sh`.
//!
//! `hello-server <bare|unsampled|sampled> <port> [otlp-endpoint]` serves `GET /users/{id}` on
//! 127.0.0.1 from a current-thread tokio runtime (the scripts pin the process to one core).
//! `bare` has no telemetry at all; `unsampled` and `sampled` install the toolkit
//! (`otel_core::Telemetry`, OTLP/HTTP to the endpoint, default `http://127.0.0.1:4318`) and
//! `otel_http::AxumServerLayer`, with the sampler always off or always on. Every second the
//! instrumented modes print `dropped_spans=<n>` on stderr (the export queue's drop count).

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;
use otel_core::telemetry::{OtlpProtocol, TracesExporter};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| usage());
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:4318".to_owned());

    let sampler = match mode.as_str() {
        "bare" => None,
        "unsampled" => Some(Sampler::AlwaysOff),
        "sampled" => Some(Sampler::AlwaysOn),
        _ => usage(),
    };
    // Installed outside the runtime: the OTLP/HTTP exporter exports from its own thread.
    let guard = sampler.map(|sampler| {
        otel_core::Telemetry::builder()
            .service_name("hello-server")
            .sampler(sampler)
            .traces_exporter(TracesExporter::Otlp)
            .otlp_protocol(OtlpProtocol::HttpProtobuf)
            .otlp_endpoint(endpoint)
            .otlp_timeout(Duration::from_secs(2))
            .log_filter("error,otel_http=info")
            .install()
            .expect("telemetry setup")
    });
    let guard = guard.map(std::sync::Arc::new);
    if let Some(guard) = guard.clone() {
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                eprintln!("dropped_spans={}", guard.dropped_spans());
            }
        });
    }

    let app = otel_benches::router();
    let app = if guard.is_some() {
        app.layer(otel_http::AxumServerLayer::new())
    } else {
        app
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            eprintln!("listening mode={mode} port={port}");
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .unwrap();
        });
    if let Some(guard) = guard {
        eprintln!("final dropped_spans={}", guard.dropped_spans());
    }
}

fn usage() -> ! {
    eprintln!("usage: hello-server <bare|unsampled|sampled> <port> [otlp-endpoint]");
    std::process::exit(2)
}
