//! What the demo prints, and what it remembers of each scenario to print its summary.
//!
//! Telemetry is installed once ([`Output::install`]). Without `OTEL_EXPORTER_OTLP_ENDPOINT`
//! the finished traces go, as trees, to otel-core's [`ConsoleExporter`] on stdout, through a
//! [`DemoProcessor`] that also keeps a copy of each finished span (so a scenario can say, with
//! the numbers, what the trees show) and can *mute* the spans of repeated requests (the first
//! request of a burst is printed in full, the other ones only counted). Log lines go to stdout
//! through [`LogTee`], which keeps a copy of each line for the same reason.
//!
//! ```no_run
//! # async fn run() -> Result<(), examples::demo::DemoError> {
//! let output = examples::demo::Output::install()?;
//! output.header(1, "a retry storm");
//! // ... requests ...
//! output.settle().await; // every span of the step has ended and is printed
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use otel_core::attributes::semconv;
use otel_core::opentelemetry::trace::{Span as _, SpanId, SpanKind, Status, TraceContextExt as _};
use otel_core::opentelemetry::{Context, Value};
use otel_core::opentelemetry_sdk::Resource;
use otel_core::opentelemetry_sdk::error::OTelSdkResult;
use otel_core::opentelemetry_sdk::trace::{SimpleSpanProcessor, Span, SpanData, SpanProcessor};
use otel_core::telemetry::{ConsoleExporter, TelemetryGuard};
use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;

use super::DemoError;

/// Spans kept for the summary of one step; more are counted but not kept (bounded memory).
const MAX_KEPT_SPANS: usize = 20_000;
/// Log lines kept for the summary of one step.
const MAX_KEPT_LINES: usize = 10_000;
/// A step has settled when no span has ended for this long...
const QUIET_PERIOD: Duration = Duration::from_millis(150);
/// ...or, at the latest, after this long.
const MAX_SETTLE: Duration = Duration::from_secs(2);

/// The demo's telemetry and terminal output. Dropping it flushes and shuts telemetry down.
pub struct Output {
    shared: Arc<Shared>,
    /// `false` with `OTEL_EXPORTER_OTLP_ENDPOINT`: the spans go to the backend only.
    console: bool,
    guard: TelemetryGuard,
}

/// One finished span as the summaries need it.
#[derive(Debug, Clone)]
pub struct SeenSpan {
    /// The service whose tree it is in (`gateway`, `payments`, ...).
    pub service: &'static str,
    /// The span name (`POST /api/checkout`, `retry POST`, ...).
    pub name: String,
    /// The trace it belongs to (hex).
    pub trace_id: String,
    /// Whether its status is an error.
    pub error: bool,
    /// Its attributes as `(key, value)` strings.
    pub attributes: Vec<(String, String)>,
    /// The trace ids (hex) of the spans it links to.
    pub links: Vec<String>,
}

impl SeenSpan {
    /// The value of attribute `key`, if recorded.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Output {
    /// Installs telemetry (service `shop-demo`): the console tree on stdout, or OTLP when
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
    pub fn install() -> Result<Self, DemoError> {
        let shared = Arc::new(Shared::default());
        let otlp = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        let mut builder = otel_core::Telemetry::builder()
            .service_name("shop-demo")
            .log_writer(LogTee {
                shared: shared.clone(),
            });
        if std::env::var_os("RUST_LOG").is_none() {
            // Our spans (INFO) and the demo's own log lines; no per-connection chatter.
            builder = builder.log_filter("info,h2=warn,hyper=warn,tower=warn,sqlx=warn");
        }
        if !otlp {
            builder = builder.span_processor(DemoProcessor::new(shared.clone()));
        }
        let guard = builder.install()?;
        Ok(Output {
            shared,
            console: !otlp,
            guard,
        })
    }

    /// Names the service that listens on `port`: the trees of its server spans (and of
    /// everything below them) are printed under that name.
    pub fn register_service(&self, port: u16, name: &'static str) {
        self.shared.ports.lock().insert(port, name);
    }

    /// Whether the trees are printed here (no OTLP endpoint).
    pub fn is_console(&self) -> bool {
        self.console
    }

    /// Prints the banner of step `n`.
    pub fn header(&self, n: u32, title: &str) {
        let rule = "=".repeat(88);
        self.line(&format!("\n{rule}\n[{n}/6] {title}\n{rule}"));
    }

    /// Prints one line of the story (a summary, a number).
    pub fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Hides the spans and log lines of the requests that follow (they are still counted):
    /// the first request of a burst shows the tree, the rest would repeat it.
    pub fn mute(&self, muted: bool) {
        self.shared.muted.store(muted, Ordering::SeqCst);
    }

    /// Waits until no span has ended for a short while (bounded), then flushes: every tree
    /// of the step is printed before the next header.
    pub async fn settle(&self) {
        let started = Instant::now();
        let mut last_count = self.shared.ended.load(Ordering::SeqCst);
        let mut quiet_since = Instant::now();
        while started.elapsed() < MAX_SETTLE {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let count = self.shared.ended.load(Ordering::SeqCst);
            if count != last_count {
                last_count = count;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= QUIET_PERIOD {
                break;
            }
        }
        if self.console {
            // Prints the traces whose root is still missing (none, normally). An OTLP export
            // is left to the batch processor: a flush per step would wait on the network.
            self.guard.force_flush();
        }
        let _ = std::io::stdout().flush();
    }

    /// The spans that ended (and were not muted) since the last call, and forgets them.
    pub fn take_spans(&self) -> Vec<SeenSpan> {
        std::mem::take(&mut *self.shared.spans.lock())
    }

    /// The log lines printed since the last call, and forgets them.
    pub fn take_log_lines(&self) -> Vec<String> {
        std::mem::take(&mut *self.shared.lines.lock())
    }

    /// Flushes and shuts telemetry down (waiting at most 5 s for an OTLP backend).
    pub fn shutdown(self) {
        let _ = std::io::stdout().flush();
        // Shut down off the async workers: an OTLP exporter may block on its last export.
        let _ = self.guard.shutdown(Duration::from_secs(5));
    }
}

// ---- span processor ---------------------------------------------------------------------

/// The service of spans that belong to no server span of a known port.
const DEFAULT_SERVICE: &str = "gateway";
/// Open spans remembered for their children's service (bounded; cleared when over).
const MAX_OPEN_SPANS: usize = 100_000;

/// State shared by the span processor, the log writer and [`Output`].
#[derive(Default)]
struct Shared {
    muted: AtomicBool,
    ended: AtomicU64,
    spans: Mutex<Vec<SeenSpan>>,
    lines: Mutex<Vec<String>>,
    /// Which service listens on which port (`server.port` of a server span).
    ports: Mutex<HashMap<u16, &'static str>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Sends each finished span to the console tree of its service unless muted, and keeps a
/// summary of each.
///
/// One console exporter per service, because the services share one process: the exporter
/// prints a trace when its *local root* ends, and the payments server span (remote parent)
/// is a local root of the gateway's trace too; with one exporter, it would take the gateway's
/// finished client spans into its own tree. Per service, each tree is what that service
/// alone would print.
#[derive(Debug)]
struct DemoProcessor {
    shared: Arc<Shared>,
    services: Mutex<Services>,
}

#[derive(Debug, Default)]
struct Services {
    /// Service of each started, not yet ended span.
    by_span: HashMap<SpanId, &'static str>,
    /// The console printer of each service, created at its first span.
    printers: Vec<(&'static str, SimpleSpanProcessor<ConsoleExporter>)>,
}

impl DemoProcessor {
    fn new(shared: Arc<Shared>) -> Self {
        DemoProcessor {
            shared,
            services: Mutex::new(Services::default()),
        }
    }

    /// The service a starting span belongs to: its local parent's, else the service that
    /// listens on its `server.port` (server spans), else the gateway.
    fn service_of(&self, services: &Services, span: &Span, parent: &Context) -> &'static str {
        let parent = parent.span().span_context().clone();
        if parent.is_valid()
            && !parent.is_remote()
            && let Some(service) = services.by_span.get(&parent.span_id())
        {
            return service;
        }
        let port = span.exported_data().and_then(|data| {
            if data.span_kind != SpanKind::Server {
                return None;
            }
            data.attributes
                .iter()
                .find(|kv| kv.key.as_str() == semconv::attribute::SERVER_PORT)
                .and_then(|kv| match &kv.value {
                    Value::I64(port) => u16::try_from(*port).ok(),
                    other => other.as_str().parse().ok(),
                })
        });
        port.and_then(|port| self.shared.ports.lock().get(&port).copied())
            .unwrap_or(DEFAULT_SERVICE)
    }
}

impl Services {
    fn printer(&mut self, service: &'static str) -> &SimpleSpanProcessor<ConsoleExporter> {
        let index = match self.printers.iter().position(|(name, _)| *name == service) {
            Some(index) => index,
            None => {
                let exporter = ConsoleExporter::builder()
                    .writer(std::io::stdout())
                    .color(false)
                    .build();
                let mut printer = SimpleSpanProcessor::new(exporter);
                printer.set_resource(&Resource::builder_empty().with_service_name(service).build());
                self.printers.push((service, printer));
                self.printers.len() - 1
            }
        };
        &self.printers[index].1
    }
}

impl SpanProcessor for DemoProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        let mut services = self.services.lock();
        let service = self.service_of(&services, span, cx);
        if services.by_span.len() >= MAX_OPEN_SPANS {
            services.by_span.clear();
        }
        services
            .by_span
            .insert(span.span_context().span_id(), service);
    }

    fn on_end(&self, span: SpanData) {
        let mut services = self.services.lock();
        let service = services
            .by_span
            .remove(&span.span_context.span_id())
            .unwrap_or(DEFAULT_SERVICE);
        if !self.shared.muted.load(Ordering::SeqCst) {
            {
                let mut kept = self.shared.spans.lock();
                if kept.len() < MAX_KEPT_SPANS {
                    kept.push(SeenSpan::new(service, &span));
                }
            }
            services.printer(service).on_end(span);
        }
        self.shared.ended.fetch_add(1, Ordering::SeqCst);
    }

    fn force_flush(&self) -> OTelSdkResult {
        for (_, printer) in &self.services.lock().printers {
            let _ = printer.force_flush();
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        for (_, printer) in &self.services.lock().printers {
            let _ = printer.shutdown_with_timeout(timeout);
        }
        Ok(())
    }

    /// Each printer has its own resource (its service's name); the SDK's is not used.
    fn set_resource(&mut self, _resource: &Resource) {}
}

impl SeenSpan {
    fn new(service: &'static str, span: &SpanData) -> Self {
        SeenSpan {
            service,
            links: span
                .links
                .iter()
                .map(|link| link.span_context.trace_id().to_string())
                .collect(),
            name: span.name.to_string(),
            trace_id: span.span_context.trace_id().to_string(),
            error: matches!(span.status, Status::Error { .. }),
            attributes: span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect(),
        }
    }
}

// ---- log lines --------------------------------------------------------------------------

/// The log writer: each line goes to stdout (unless muted) and is kept for the summary.
struct LogTee {
    shared: Arc<Shared>,
}

/// One log line being written; printed and kept when the formatter is done with it.
struct LogLine {
    shared: Arc<Shared>,
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for LogTee {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            shared: self.shared.clone(),
            buf: Vec::new(),
        }
    }
}

impl std::io::Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.buf.is_empty() || self.shared.muted.load(Ordering::SeqCst) {
            return;
        }
        let line = String::from_utf8_lossy(&self.buf);
        let line = without_span_fields(line.trim_end());
        let _ = writeln!(std::io::stdout().lock(), "{line}");
        let mut lines = self.shared.lines.lock();
        if lines.len() < MAX_KEPT_LINES {
            lines.push(line.into_owned());
        }
    }
}

/// `<time> INFO HTTP request{http.route="/x" ...}:retry{...}: target: message ids` without
/// the span list and its fields, which repeat what the trees show and make each line several
/// hundred characters long; the ids at the end (`trace_id`, `span_id`, `request_id`) stay.
/// A line with no span list, or one this does not recognise, is returned as it is.
fn without_span_fields(line: &str) -> Cow<'_, str> {
    let Some((level_at, level)) = [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "]
        .iter()
        .filter_map(|level| line.find(level).map(|at| (at, level.len())))
        .min()
    else {
        return Cow::Borrowed(line);
    };
    let (head, rest) = line.split_at(level_at + level);
    // The span list ends at the first `: ` outside braces and quotes.
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth = depth.saturating_sub(1),
            ':' if !quoted && depth == 0 && rest[i + 1..].starts_with(' ') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    match end {
        // A bare target (`otel_core::n_plus_one: ...`) is not a span list: keep it.
        Some(end) if !is_target(&rest[..end]) => Cow::Owned(format!("{head}{}", &rest[end + 2..])),
        _ => Cow::Borrowed(line),
    }
}

/// Whether `s` looks like a `tracing` target (a Rust path).
fn is_target(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::without_span_fields;

    #[test]
    fn span_fields_are_cut_and_ids_kept() {
        let line = r#"2026-11-21T21:09:39.500661Z  INFO HTTP request{otel.name="POST /api/order" url.path="/a: {b}"}:retry{n=1}: examples::demo: order received trace_id=abc request_id=user-quoted-42"#;
        assert_eq!(
            without_span_fields(line),
            "2026-11-21T21:09:39.500661Z  INFO examples::demo: order received trace_id=abc request_id=user-quoted-42"
        );
        let bare_span = "2026-11-21T21:09:33Z  INFO refresh_rates (background job): examples::demo::slow_api: rates refreshed";
        assert_eq!(
            without_span_fields(bare_span),
            "2026-11-21T21:09:33Z  INFO examples::demo::slow_api: rates refreshed"
        );
    }

    #[test]
    fn lines_without_spans_are_unchanged() {
        for line in [
            "2026-11-21T21:09:31Z  WARN otel_core::n_plus_one: final count: N+1 (n_plus_one)",
            "no level here: at all",
            "2026-11-21T21:09:31Z  INFO ",
            r#"2026-11-21T21:09:31Z  INFO span{a="unterminated"#,
        ] {
            assert_eq!(without_span_fields(line), line);
        }
    }
}
