//! The README's first command, `cargo run -p examples --bin demo`, run as a test so it cannot
//! rot: it must exit successfully within a minute and print, for each of its six incident
//! scenarios, the lines that tell the story (attempt counts, the N+1 finding and its fix, the
//! breaker failing fast, the common `server.address`, the request id on every span).
//!
//! One run of the demo for the whole file (CI has two cores). The numbers that depend on
//! timing (milliseconds) are not asserted; the counts are.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The demo promises to finish in under a minute; the run is killed after this.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn demo_replays_the_six_incidents() {
    let demo = build_demo();
    let mut command = tokio::process::Command::new(&demo);
    // The demo's output must not depend on the caller's telemetry settings.
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    let child = command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("demo starts");
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .expect("the demo finishes in time")
        .expect("demo output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = format!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "demo failed: {}\n{text}",
        output.status
    );
    let demo = Output(&text);

    // The six scenarios, in order.
    demo.in_order(&[
        "[1/6] A retry storm",
        "[2/6] An N+1 page",
        "[3/6] A slow external API",
        "[4/6] A dead inventory service",
        "[5/6] A shared dependency down",
        "[6/6] A request id quoted by the user",
        "demo finished in ",
    ]);

    // 1. Retry storm: 6x the load without backoff and budget, 1.2x with.
    demo.has("naive client: 30 attempts for 5 requests");
    demo.has("retry with backoff and budget: 6 attempts for 5 requests");
    demo.has("6.0x the requests vs 1.2x");
    demo.has("retry.budget_exhausted");

    // 2. N+1: flagged with its shape, count, call site and fix; the batched page is clean.
    demo.has("50 posts, 150 comments, 51 queries");
    demo.has("flagged n_plus_one: `SELECT body FROM comments WHERE post_id = ?` ran 50 times");
    demo.has("fix: run one SELECT for all keys: `sqlx::QueryBuilder`");
    demo.has("n_plus_one.kind=n_plus_one");
    demo.has("50 posts, 150 comments, 2 queries");
    demo.has("batched page: no n_plus_one finding");

    // 3. Slow API: waited on, then moved to a linked background trace.
    demo.has("synchronous: the request took ");
    demo.has("background: the request took ");
    demo.has("linked to the request's");

    // 4. Dead inventory: every call waits the timeout, then the breaker fails fast.
    demo.has("6 waited the 300 ms timeout (error.type=timeout)");
    demo.has("3 waited the timeout, then the breaker opened and 3 failed fast");
    demo.has("error.type=circuit_open, circuit_breaker.state=open");

    // 5. Shared dependency: the common server.address of the failing calls.
    demo.has(
        "common cause: 3 failing client spans share server.address=cache.internal \
         (error.type=connection_refused)",
    );

    // 6. The request id the user quoted, on every span and every log line of its request.
    demo.has("the gateway echoed x-request-id: user-quoted-42");
    demo.all_of("request id user-quoted-42: on ", " spans");
    demo.all_of("request id user-quoted-42: on ", " log lines");

    // Each step prints its trace trees.
    demo.has("└─ GET /api/dashboard ");
    demo.has("└─ POST /api/order ");

    // Under a minute, as the README promises.
    let seconds: f64 = demo
        .after("demo finished in ")
        .trim_end_matches(" s")
        .parse()
        .expect("seconds");
    assert!(seconds < 60.0, "the demo took {seconds} s");
}

/// Builds the demo binary (already built by `cargo test --workspace`: then a no-op) and
/// returns its path, from cargo's JSON messages.
fn build_demo() -> PathBuf {
    let cargo = option_env!("CARGO")
        .map(String::from)
        .or_else(|| std::env::var("CARGO").ok())
        .unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--manifest-path",
            manifest,
            "-p",
            "examples",
            "--bin",
            "demo",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build -p examples --bin demo failed"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "demo")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the demo executable")
}

/// The demo's output, with assertions that print it on failure.
struct Output<'a>(&'a str);

impl Output<'_> {
    /// The output contains `needle`.
    fn has(&self, needle: &str) {
        assert!(
            self.0.contains(needle),
            "the demo no longer prints {needle:?}; output:\n{}",
            self.0
        );
    }

    /// The output contains every needle, in this order.
    fn in_order(&self, needles: &[&str]) {
        let mut from = 0;
        for needle in needles {
            match self.0[from..].find(needle) {
                Some(at) => from += at + needle.len(),
                None => panic!(
                    "the demo no longer prints {needle:?} (after the previous step); output:\n{}",
                    self.0
                ),
            }
        }
    }

    /// The rest of the first line that starts with `prefix`.
    fn after(&self, prefix: &str) -> &str {
        self.0
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?}; output:\n{}", self.0))
    }

    /// The line `{prefix}X of Y{suffix}` exists with X = Y > 0 (e.g. "on 5 of 5 spans").
    fn all_of(&self, prefix: &str, suffix: &str) {
        let line = self
            .0
            .lines()
            .filter_map(|line| line.trim().strip_prefix(prefix))
            .find_map(|rest| rest.split_once(suffix).map(|(counts, _)| counts))
            .unwrap_or_else(|| panic!("no line {prefix:?}..{suffix:?}; output:\n{}", self.0));
        let (found, total) = line
            .split_once(" of ")
            .unwrap_or_else(|| panic!("{prefix}{line}{suffix}: expected `X of Y`"));
        let found: u32 = found.parse().expect("a count");
        let total: u32 = total.parse().expect("a count");
        assert!(
            found == total && total > 0,
            "{prefix}{found} of {total}{suffix}: not on every one"
        );
    }
}
