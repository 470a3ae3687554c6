//! The incident demo: a small shop on 127.0.0.1 and six incidents replayed, each with what
//! happened and its trace trees.
//!
//! ```sh
//! cargo run -p examples --bin demo
//! # or, to see the same traces in Jaeger:
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p examples --bin demo
//! ```

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match examples::demo::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
