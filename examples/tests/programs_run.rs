//! The minimal programs of the README run to completion on their own and print what their
//! doc comment promises (the trace tree included), so they cannot rot.

use std::time::Duration;

use tokio::process::Command;

/// Runs the binary at `path` with the console exporter (no OTLP from the environment) and
/// returns its stdout followed by its stderr (where the trace trees go); fails if it does not exit successfully within 60 s.
async fn run(path: &str) -> String {
    let mut command = Command::new(path);
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SDK_DISABLED",
        "OTEL_N_PLUS_ONE",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.env("NO_COLOR", "1").kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("{path} did not finish within 60 s"))
        .unwrap_or_else(|e| panic!("{path} did not start: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{path} failed: {}\n{text}",
        output.status
    );
    text
}

/// Whether some line of `output` contains every one of `parts`.
fn has_line(output: &str, parts: &[&str]) -> bool {
    output
        .lines()
        .any(|line| parts.iter().all(|p| line.contains(p)))
}

#[tokio::test]
async fn axum_server_serves_one_traced_request() {
    let out = run(env!("CARGO_BIN_EXE_axum_server")).await;
    assert!(has_line(&out, &["200 OK user 42"]), "{out}");
    assert!(has_line(&out, &["trace ", "users"]), "{out}");
    assert!(
        has_line(&out, &["└─ GET /users/{id}", "200", "request.id=example-1"]),
        "{out}"
    );
    assert!(
        has_line(&out, &["loading user", "request_id=example-1"]),
        "{out}"
    );
}

#[tokio::test]
async fn tonic_server_client_links_client_and_server_spans() {
    let out = run(env!("CARGO_BIN_EXE_tonic_server_client")).await;
    assert!(has_line(&out, &["inventory: Serving"]), "{out}");
    assert!(
        has_line(
            &out,
            &[
                "grpc.health.v1.Health/Check",
                "OK",
                "server.address=127.0.0.1"
            ]
        ),
        "client span: {out}"
    );
    assert!(
        has_line(&out, &["inventory", "(continues remote parent"]),
        "server span under the client's context: {out}"
    );
}

#[tokio::test]
async fn reqwest_retry_breaker_retries_to_success() {
    let out = run(env!("CARGO_BIN_EXE_reqwest_retry_breaker")).await;
    assert!(
        has_line(&out, &["200 OK 12 in stock after 3 attempts"]),
        "{out}"
    );
    assert!(has_line(&out, &["retry GET", "retry.attempts=3"]), "{out}");
    assert!(
        has_line(
            &out,
            &[
                "GET",
                "http.request.resend_count=2",
                "circuit_breaker.state=closed"
            ]
        ),
        "{out}"
    );
}

#[tokio::test]
async fn sqlx_n_plus_one_warns_and_the_batched_version_does_not() {
    let out = run(env!("CARGO_BIN_EXE_sqlx_n_plus_one")).await;
    assert!(has_line(&out, &["20 comments in 2 queries"]), "{out}");
    assert!(
        has_line(
            &out,
            &[
                "WARN",
                "n_plus_one",
                "SELECT body FROM comments WHERE post_id = ?"
            ]
        ),
        "{out}"
    );
    assert!(has_line(&out, &["SELECT comments  ×20"]), "{out}");
    let warnings = out.lines().filter(|l| l.contains("WARN")).count();
    assert_eq!(warnings, 1, "one warning, for the loop only: {out}");
}
