//! The terminal trace tree as a user sees it: real SDK spans (SdkTracerProvider with the
//! console exporter behind a SimpleSpanProcessor) printed into a shared buffer, compared
//! character for character. Ids come from a sequential id generator and time from explicit
//! span timestamps and a manual clock, so no test sleeps.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use otel_core::attributes::{self, semconv::attribute as semconv};
use otel_core::opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider as _,
};
use otel_core::opentelemetry::{Context, KeyValue};
use otel_core::opentelemetry_sdk::Resource;
use otel_core::opentelemetry_sdk::trace::{IdGenerator, SdkTracer, SdkTracerProvider};
use otel_core::telemetry::ConsoleExporter;

// ---- harness ----------------------------------------------------------------------------

/// The terminal: every byte written, and how many write calls.
#[derive(Clone, Default)]
struct Terminal {
    bytes: Arc<Mutex<Vec<u8>>>,
    writes: Arc<AtomicUsize>,
}

impl Write for Terminal {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Terminal {
    fn text(&self) -> String {
        String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
    }
    fn take(&self) -> String {
        let text = self.text();
        self.bytes.lock().unwrap().clear();
        text
    }
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

/// A monotonic clock that moves only when told.
#[derive(Clone)]
struct ManualClock(Arc<Mutex<Instant>>);

impl ManualClock {
    fn new() -> Self {
        ManualClock(Arc::new(Mutex::new(Instant::now())))
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
    fn reader(&self) -> impl Fn() -> Instant + Send + Sync + 'static {
        let now = self.0.clone();
        move || *now.lock().unwrap()
    }
}

/// Trace ids 1, 2, 3 ... and span ids 1, 2, 3 ..., so the output is exact.
#[derive(Debug, Default)]
struct SequentialIds {
    trace: AtomicU64,
    span: AtomicU64,
}

impl IdGenerator for SequentialIds {
    fn new_trace_id(&self) -> TraceId {
        TraceId::from(u128::from(self.trace.fetch_add(1, Ordering::SeqCst) + 1))
    }
    fn new_span_id(&self) -> SpanId {
        SpanId::from(self.span.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

struct Harness {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Harness {
    fn new(service: &'static str, exporter: ConsoleExporter) -> Self {
        let provider = SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name(service).build())
            .with_id_generator(SequentialIds::default())
            .with_simple_exporter(exporter)
            .build();
        let tracer = provider.tracer("console-tree-test");
        Harness { provider, tracer }
    }

    /// Starts a span at `start_ms` under `parent` (or as a new trace) and returns its context.
    fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        start_ms: u64,
        attributes: Vec<KeyValue>,
        parent: Option<&Context>,
    ) -> Context {
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(at(start_ms))
            .with_attributes(attributes);
        let parent = parent.cloned().unwrap_or_default();
        let span = self.tracer.build_with_context(builder, &parent);
        parent.with_span(span)
    }
}

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

fn end(cx: &Context, end_ms: u64) {
    cx.span().end_with_timestamp(at(end_ms));
}

fn exporter_to(terminal: &Terminal, clock: &ManualClock) -> ConsoleExporter {
    ConsoleExporter::builder()
        .writer(terminal.clone())
        .clock(clock.reader())
        .build()
}

fn warnings(text: &str) -> Vec<&str> {
    text.lines().filter(|line| line.starts_with('⚠')).collect()
}

// ---- the tree ---------------------------------------------------------------------------

#[test]
fn prints_a_nested_tree_sorted_by_start_with_status_and_incident_attributes() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let h = Harness::new("checkout", exporter_to(&terminal, &clock));

    let root = h.start(
        "GET /api/checkout",
        SpanKind::Server,
        0,
        vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 500),
            KeyValue::new(semconv::ERROR_TYPE, "500"),
            KeyValue::new(attributes::REQUEST_ID, "abc"),
        ],
        None,
    );
    let first = h.start(
        "POST /charge",
        SpanKind::Client,
        10,
        vec![
            KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 503),
            KeyValue::new(semconv::ERROR_TYPE, "503"),
            KeyValue::new(semconv::HTTP_REQUEST_RESEND_COUNT, 0),
            KeyValue::new(semconv::SERVER_ADDRESS, "payments"),
            KeyValue::new("url.full", "http://payments:8081/charge?card=4111"),
        ],
        Some(&root),
    );
    let second = h.start(
        "POST /charge",
        SpanKind::Client,
        310,
        vec![
            KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 503),
            KeyValue::new(semconv::HTTP_REQUEST_RESEND_COUNT, 1),
            KeyValue::new(semconv::SERVER_ADDRESS, "payments"),
        ],
        Some(&root),
    );
    second.span().add_event_with_timestamp(
        attributes::RETRY_ATTEMPT_EVENT,
        at(310),
        vec![
            KeyValue::new(attributes::RETRY_ATTEMPT, 2),
            KeyValue::new(attributes::RETRY_DELAY_MS, 100),
            KeyValue::new(attributes::RETRY_REASON, "503"),
        ],
    );
    second
        .span()
        .add_event_with_timestamp("unrelated.event", at(311), vec![]);
    let authorize = h.start("authorize", SpanKind::Internal, 720, vec![], Some(&root));
    let select = h.start(
        "SELECT users",
        SpanKind::Client,
        730,
        vec![
            KeyValue::new(semconv::DB_RESPONSE_RETURNED_ROWS, 1),
            KeyValue::new("db.query.text", "SELECT * FROM users WHERE id = $1"),
        ],
        Some(&authorize),
    );
    let reserve = h.start(
        "inventory.Inventory/Reserve",
        SpanKind::Client,
        1_100,
        vec![
            KeyValue::new(attributes::CIRCUIT_BREAKER_STATE, "open"),
            KeyValue::new(semconv::ERROR_TYPE, "circuit_open"),
            KeyValue::new(semconv::SERVER_ADDRESS, "inventory"),
        ],
        Some(&root),
    );

    // End order is not start order: the tree is sorted by start time.
    reserve.span().set_status(Status::error(""));
    end(&reserve, 1_101);
    first.span().set_status(Status::error(""));
    end(&first, 210);
    second.span().set_status(Status::error(""));
    end(&second, 710);
    end(&select, 735);
    end(&authorize, 1_000);
    assert_eq!(terminal.text(), "", "nothing prints before the root ends");
    root.span().set_status(Status::error("upstream failed"));
    end(&root, 1_240);

    assert_eq!(
        terminal.text(),
        "\
trace 00000000000000000000000000000001  checkout  1.24s  ERROR
└─ GET /api/checkout  1.24s  500  ERROR: upstream failed  error.type=500 request.id=abc
   ├─ POST /charge  200ms  503  ERROR  error.type=503 http.request.resend_count=0 server.address=payments
   ├─ POST /charge  400ms  503  ERROR  http.request.resend_count=1 server.address=payments
   │     • retry.attempt  +0µs  retry.attempt=2 retry.delay_ms=100 retry.reason=503
   ├─ authorize  280ms
   │  └─ SELECT users  5ms  db.response.returned_rows=1
   └─ inventory.Inventory/Reserve  1ms  ERROR  circuit_breaker.state=open error.type=circuit_open server.address=inventory
"
    );
    assert_eq!(terminal.writes(), 1, "one write call per trace");
    drop(h.provider);
}

#[test]
fn a_run_of_same_named_siblings_collapses_into_one_line() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let h = Harness::new("blog", exporter_to(&terminal, &clock));

    let root = h.start("GET /posts", SpanKind::Server, 0, vec![], None);
    end(
        &h.start("SELECT posts", SpanKind::Client, 1, vec![], Some(&root)),
        2,
    );
    for i in 0..50 {
        let start = 10 + 2 * i;
        let select = h.start(
            "SELECT comments",
            SpanKind::Client,
            start,
            vec![],
            Some(&root),
        );
        if i == 7 {
            select.span().set_status(Status::error("deadlock"));
            end(&select, start + 2);
        } else {
            end(&select, start + 1);
        }
    }
    // Four in a row stay four lines.
    for i in 0..4 {
        let start = 120 + i;
        end(
            &h.start("GET /avatar", SpanKind::Client, start, vec![], Some(&root)),
            start + 1,
        );
    }
    root.span().add_event_with_timestamp(
        attributes::N_PLUS_ONE_EVENT,
        at(140),
        vec![
            KeyValue::new(attributes::N_PLUS_ONE_KIND, "n_plus_one"),
            KeyValue::new(attributes::N_PLUS_ONE_COUNT, 50),
            KeyValue::new(
                attributes::N_PLUS_ONE_SHAPE,
                "SELECT * FROM comments WHERE post_id = ?",
            ),
        ],
    );
    // As the detector records it: the largest finding's attributes on the scope span too. The
    // tree shows them once, on the event line, and the number of findings on the span line.
    root.span()
        .set_attribute(KeyValue::new(attributes::N_PLUS_ONE_KIND, "n_plus_one"));
    root.span()
        .set_attribute(KeyValue::new(attributes::N_PLUS_ONE_COUNT, 50));
    root.span()
        .set_attribute(KeyValue::new(attributes::N_PLUS_ONE_FINDINGS, 1));
    end(&root, 150);

    assert_eq!(
        terminal.text(),
        "\
trace 00000000000000000000000000000001  blog  150ms
└─ GET /posts  150ms  n_plus_one.findings=1
   │  • n_plus_one.detected  +140ms  n_plus_one.kind=n_plus_one n_plus_one.count=50 n_plus_one.shape=\"SELECT * FROM comments WHERE post_id = ?\"
   ├─ SELECT posts  1ms
   ├─ SELECT comments  ×50  total 51ms  max 2ms  ERROR ×1
   ├─ GET /avatar  1ms
   ├─ GET /avatar  1ms
   ├─ GET /avatar  1ms
   └─ GET /avatar  1ms
"
    );
}

#[test]
fn a_root_with_a_remote_parent_says_where_the_trace_continues_from() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let h = Harness::new("inventory", exporter_to(&terminal, &clock));

    let remote = Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    let root = h.start(
        "inventory.Inventory/Reserve",
        SpanKind::Server,
        0,
        vec![KeyValue::new(semconv::RPC_RESPONSE_STATUS_CODE, "OK")],
        Some(&remote),
    );
    let child = h.start("reserve stock", SpanKind::Internal, 1, vec![], Some(&root));
    end(&child, 4);
    assert_eq!(
        terminal.text(),
        "",
        "a child with a local parent waits for it"
    );
    end(&root, 5);

    assert_eq!(
        terminal.text(),
        "\
trace 4bf92f3577b34da6a3ce929d0e0e4736  inventory  5ms  (continues remote parent 00f067aa0ba902b7)
└─ inventory.Inventory/Reserve  5ms  OK
   └─ reserve stock  3ms
"
    );
}

#[test]
fn spans_from_tracing_through_the_bridge_print_as_one_tree() {
    use tracing_subscriber::layer::SubscriberExt;

    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let h = Harness::new("api", exporter_to(&terminal, &clock));
    let subscriber = tracing_subscriber::registry()
        .with(otel_core::tracing_opentelemetry::layer().with_tracer(h.tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!(
            "GET /users/{id}",
            "otel.kind" = "server",
            "otel.status_code" = "ERROR",
            "http.response.status_code" = 500,
            "request.id" = "r-1",
            "url.path" = "/users/42",
        );
        root.in_scope(|| {
            tracing::info_span!("SELECT users", "otel.kind" = "client").in_scope(|| {});
            tracing::info!("a log line is not an incident event");
            // A transition event shows its own attributes, not the bridge's level/target/code.*.
            tracing::event!(
                name: "circuit_breaker.opened",
                tracing::Level::WARN,
                { "circuit_breaker.name" = "inventory:50051" },
                "circuit_breaker.opened"
            );
        });
    });

    assert_eq!(
        mask_durations(&terminal.text()),
        "\
trace 00000000000000000000000000000001  api  D  ERROR
└─ GET /users/{id}  D  500  ERROR  request.id=r-1
   │  • circuit_breaker.opened  D  circuit_breaker.name=inventory:50051
   └─ SELECT users  D
"
    );
}

/// Real `tracing` spans take real time: durations become `D`.
fn mask_durations(text: &str) -> String {
    let is_duration = |field: &str| {
        let digits = field
            .trim_start_matches('+')
            .trim_end_matches(['µ', 'm', 's']);
        field != digits
            && !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    text.lines()
        .map(|line| {
            line.split("  ")
                .map(|field| if is_duration(field) { "D" } else { field })
                .collect::<Vec<_>>()
                .join("  ")
        })
        .map(|line| line + "\n")
        .collect()
}

// ---- bounded memory ---------------------------------------------------------------------

#[test]
fn a_trace_whose_root_never_ends_is_printed_incomplete_after_max_age() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let exporter = ConsoleExporter::builder()
        .writer(terminal.clone())
        .clock(clock.reader())
        .max_age(Duration::from_secs(10))
        .build();
    let h = Harness::new("api", exporter);

    let stuck = h.start("GET /stuck", SpanKind::Server, 0, vec![], None);
    let query = h.start(
        "SELECT slow",
        SpanKind::Client,
        1,
        vec![KeyValue::new(semconv::ERROR_TYPE, "timeout")],
        Some(&stuck),
    );
    end(&query, 6);

    clock.advance(Duration::from_secs(9));
    end(
        &h.start("GET /health", SpanKind::Server, 0, vec![], None),
        1,
    );
    assert_eq!(
        terminal.take(),
        "\
trace 00000000000000000000000000000002  api  1ms
└─ GET /health  1ms
",
        "9 s is not yet max_age"
    );

    clock.advance(Duration::from_secs(1));
    end(
        &h.start("GET /health", SpanKind::Server, 0, vec![], None),
        1,
    );
    assert_eq!(
        terminal.take(),
        "\
trace 00000000000000000000000000000003  api  1ms
└─ GET /health  1ms
trace 00000000000000000000000000000001  api  (incomplete)
└─ SELECT slow  5ms  error.type=timeout
"
    );
    drop(stuck);
}

#[test]
fn spans_that_end_after_their_root_are_printed_later_as_late() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let h = Harness::new("api", exporter_to(&terminal, &clock));

    let root = h.start("POST /orders", SpanKind::Server, 0, vec![], None);
    let detached = h.start("send receipt", SpanKind::Internal, 5, vec![], Some(&root));
    end(&root, 10);
    assert_eq!(
        terminal.take(),
        "\
trace 00000000000000000000000000000001  api  10ms
└─ POST /orders  10ms
"
    );
    end(&detached, 900);
    clock.advance(Duration::from_secs(60));
    h.provider.force_flush().unwrap();
    end(
        &h.start("GET /health", SpanKind::Server, 0, vec![], None),
        1,
    );
    assert_eq!(
        terminal.take(),
        "\
trace 00000000000000000000000000000002  api  1ms
└─ GET /health  1ms
trace 00000000000000000000000000000001  api  (incomplete: ended after the root was printed)
└─ send receipt  895ms
"
    );
}

#[test]
fn shutdown_prints_the_traces_still_waiting_for_their_root() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let h = Harness::new("api", exporter_to(&terminal, &clock));

    let stuck = h.start("GET /stuck", SpanKind::Server, 0, vec![], None);
    end(
        &h.start("SELECT a", SpanKind::Client, 1, vec![], Some(&stuck)),
        3,
    );
    h.provider.shutdown().unwrap();
    assert_eq!(
        terminal.text(),
        "\
trace 00000000000000000000000000000001  api  (incomplete)
└─ SELECT a  2ms
"
    );
}

#[test]
fn over_max_pending_traces_the_oldest_is_dropped_with_one_counted_warning() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let exporter = ConsoleExporter::builder()
        .writer(terminal.clone())
        .clock(clock.reader())
        .max_pending_traces(2)
        .build();
    let h = Harness::new("api", exporter);

    // Five requests whose roots have not ended, one finished child each.
    let roots: Vec<Context> = (0..5)
        .map(|i| {
            let root = h.start("GET /slow", SpanKind::Server, i, vec![], None);
            end(
                &h.start("SELECT x", SpanKind::Client, i, vec![], Some(&root)),
                i + 1,
            );
            root
        })
        .collect();
    let text = terminal.take();
    assert_eq!(
        warnings(&text),
        vec![
            "⚠ console exporter: dropped 1 spans of 1 traces over its caps \
             (max_pending_traces=2, max_spans_per_trace=10000); raise them with \
             ConsoleExporter::builder()"
        ],
        "one warning, not one per dropped span: {text}"
    );
    assert_eq!(text.lines().count(), 1);

    // The root of a dropped trace is dropped too (no misleading partial tree); a kept one
    // prints with its child.
    end(&roots[0], 10);
    end(&roots[4], 10);
    assert_eq!(
        terminal.take(),
        "\
trace 00000000000000000000000000000005  api  6ms
└─ GET /slow  6ms
   └─ SELECT x  1ms
"
    );

    // After max_age, the drops since the first warning are reported on one more line.
    clock.advance(Duration::from_secs(60));
    end(&roots[3], 10);
    let text = terminal.take();
    assert_eq!(
        warnings(&text),
        vec![
            "⚠ console exporter: dropped 3 spans of 2 traces over its caps \
             (max_pending_traces=2, max_spans_per_trace=10000); raise them with \
             ConsoleExporter::builder()"
        ],
        "{text}"
    );
}

#[test]
fn over_max_spans_per_trace_the_tree_says_how_many_spans_are_missing() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let exporter = ConsoleExporter::builder()
        .writer(terminal.clone())
        .clock(clock.reader())
        .max_spans_per_trace(2)
        .build();
    let h = Harness::new("api", exporter);

    let root = h.start("POST /import", SpanKind::Server, 0, vec![], None);
    for (i, name) in ["INSERT a", "INSERT b", "INSERT c", "INSERT d"]
        .into_iter()
        .enumerate()
    {
        let start = i as u64 * 10;
        end(
            &h.start(name, SpanKind::Client, start, vec![], Some(&root)),
            start + 1,
        );
    }
    end(&root, 50);
    assert_eq!(
        terminal.text(),
        "\
trace 00000000000000000000000000000001  api  50ms  (2 spans dropped over max_spans_per_trace=2)
└─ POST /import  50ms
   ├─ INSERT a  1ms
   └─ INSERT b  1ms
",
        "counted once, on the tree itself, not on a warning line per span"
    );
}

// ---- hostile input ----------------------------------------------------------------------

#[test]
fn escape_sequences_in_names_and_values_are_neutralised() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let h = Harness::new("api", exporter_to(&terminal, &clock));

    let root = h.start(
        "GET /\x1b]0;pwned\x07",
        SpanKind::Server,
        0,
        vec![
            KeyValue::new(attributes::REQUEST_ID, "\x1b[2J\x1b[31mevil\u{9b}1m"),
            KeyValue::new(semconv::ERROR_TYPE, "a".repeat(300)),
        ],
        None,
    );
    root.span()
        .set_status(Status::error("boom\r\nFAKE trace line\u{202e}"));
    end(&root, 1);

    let text = terminal.text();
    assert!(
        !text.contains(|c: char| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert_eq!(
        text,
        format!(
            "\
trace 00000000000000000000000000000001  api  1ms  ERROR
└─ GET /\\u{{1b}}]0;pwned\\u{{7}}  1ms  ERROR: boom\\r\\nFAKE trace line\\u{{202e}}  \
request.id=\"\\u{{1b}}[2J\\u{{1b}}[31mevil\\u{{9b}}1m\" error.type={}…
",
            "a".repeat(200)
        )
    );
}

#[test]
fn with_colour_the_only_escape_sequences_are_the_exporters_own() {
    let terminal = Terminal::default();
    let clock = ManualClock::new();
    let exporter = ConsoleExporter::builder()
        .writer(terminal.clone())
        .clock(clock.reader())
        .color(true)
        .build();
    let h = Harness::new("api", exporter);

    let root = h.start(
        "GET /",
        SpanKind::Server,
        0,
        vec![KeyValue::new(attributes::REQUEST_ID, "\x1b[8mhidden")],
        None,
    );
    root.span().set_status(Status::error("\x1b[0m"));
    end(&root, 1);

    assert_eq!(
        terminal.text(),
        "\x1b[1mtrace 00000000000000000000000000000001  api\x1b[0m  1ms  \x1b[31mERROR\x1b[0m
└─ GET /  1ms  \x1b[31mERROR: \\u{1b}[0m\x1b[0m  request.id=\"\\u{1b}[8mhidden\"
"
    );
}
