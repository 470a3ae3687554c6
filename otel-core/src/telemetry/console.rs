//! The terminal trace tree: a [`SpanExporter`] that prints each finished local trace as a
//! tree (the embedded default of development builds).
//!
//! Spans end before their parents, so the exporter buffers them by trace id until the local
//! root ends (the span whose parent is invalid or remote), then prints the whole tree with one
//! write and frees it. Each line shows the span name, its duration, its status and only the
//! attributes and events that explain an incident (status codes, `error.type`, resend count,
//! `retry.*`, `circuit_breaker.*`, `n_plus_one.*`, `request.id`, ...):
//!
//! ```text
//! trace 4bf92f3577b34da6a3ce929d0e0e4736  checkout  1.24s  ERROR
//! └─ GET /api/checkout  1.24s  500  ERROR  error.type=500 request.id=abc
//!    ├─ POST /charge  200ms  503  ERROR  error.type=503 http.request.resend_count=0
//!    ├─ SELECT comments  ×50  total 100ms  max 2ms
//!    └─ inventory.Inventory/Reserve  1ms  ERROR  circuit_breaker.state=open
//! ```
//!
//! ```
//! use otel_core::opentelemetry_sdk::trace::SdkTracerProvider;
//! use otel_core::telemetry::ConsoleExporter;
//! use std::time::Duration;
//!
//! let exporter = ConsoleExporter::builder() // stderr, colour when it is a terminal
//!     .max_age(Duration::from_secs(30))
//!     .build();
//! let provider = SdkTracerProvider::builder().with_simple_exporter(exporter).build();
//! # drop(provider);
//! ```
//!
//! Memory is bounded: at most `max_pending_traces` traces of at most `max_spans_per_trace`
//! spans wait for their root. A trace whose root has not ended after `max_age` is printed as
//! a partial tree marked `(incomplete)`; spans over the caps are dropped and counted, and the
//! count is reported on a single warning line (at most one per `max_age`), never per span.
//! Every string taken from a span is escaped (no control character or terminal escape sequence
//! from an attribute value reaches the terminal) and cut at 200 characters.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use parking_lot::Mutex;

use crate::attributes::{self, semconv};

/// Default for [`ConsoleExporterBuilder::max_pending_traces`].
const DEFAULT_MAX_PENDING_TRACES: usize = 1024;
/// Default for [`ConsoleExporterBuilder::max_spans_per_trace`].
const DEFAULT_MAX_SPANS_PER_TRACE: usize = 10_000;
/// Default for [`ConsoleExporterBuilder::max_age`].
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);
/// Dropped and printed trace ids remembered (at least; else 4 × `max_pending_traces`).
const RECENT_IDS_MIN: usize = 1024;

/// A [`SpanExporter`] that prints each finished local trace to a terminal as a tree.
///
/// See the [module documentation](self) for the output. Build one with
/// [`ConsoleExporter::new`] (stderr, defaults) or [`ConsoleExporter::builder`].
pub struct ConsoleExporter {
    inner: Arc<Inner>,
    /// The background thread that ages waiting traces (default clock only), woken on drop.
    ticker: Option<std::thread::Thread>,
}

/// Builder of a [`ConsoleExporter`], from [`ConsoleExporter::builder`].
///
/// ```
/// use otel_core::telemetry::ConsoleExporter;
///
/// let exporter = ConsoleExporter::builder()
///     .writer(std::io::stdout())
///     .color(false)
///     .max_pending_traces(256)
///     .build();
/// # drop(exporter);
/// ```
pub struct ConsoleExporterBuilder {
    writer: Option<Box<dyn Write + Send>>,
    color: Option<bool>,
    max_pending_traces: usize,
    max_spans_per_trace: usize,
    max_age: Duration,
    clock: Option<Clock>,
}

impl ConsoleExporter {
    /// An exporter that writes to stderr with the default caps, in colour when stderr is a
    /// terminal and `NO_COLOR` is unset.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a builder (writer, colour, memory caps, clock).
    pub fn builder() -> ConsoleExporterBuilder {
        ConsoleExporterBuilder::default()
    }
}

impl Default for ConsoleExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for ConsoleExporterBuilder {
    fn default() -> Self {
        ConsoleExporterBuilder {
            writer: None,
            color: None,
            max_pending_traces: DEFAULT_MAX_PENDING_TRACES,
            max_spans_per_trace: DEFAULT_MAX_SPANS_PER_TRACE,
            max_age: DEFAULT_MAX_AGE,
            clock: None,
        }
    }
}

impl ConsoleExporterBuilder {
    /// Where the trees go (default: stderr). Each trace is written with a single
    /// `write_all`, so trees of concurrent traces never interleave.
    pub fn writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.writer = Some(Box::new(writer));
        self
    }

    /// Forces ANSI colours on or off. By default they are on only when the writer is stderr,
    /// stderr is a terminal and `NO_COLOR` is unset or empty.
    pub fn color(mut self, color: bool) -> Self {
        self.color = Some(color);
        self
    }

    /// How many traces may wait for their root at once (default 1024). When a new trace
    /// arrives over the cap, the oldest waiting trace is dropped and counted.
    pub fn max_pending_traces(mut self, max: usize) -> Self {
        self.max_pending_traces = max;
        self
    }

    /// How many spans of one trace may wait for its root (default 10 000). Spans over the
    /// cap are dropped and counted on the header line of the printed tree.
    pub fn max_spans_per_trace(mut self, max: usize) -> Self {
        self.max_spans_per_trace = max;
        self
    }

    /// How long a trace may wait for its root (default 60 s) before it is printed as a
    /// partial tree marked `(incomplete)`. Also the minimum interval between two warning
    /// lines about dropped spans.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The monotonic clock that ages waiting traces (default [`Instant::now`]); tests inject
    /// a manual clock so they need no sleeps. Ages are checked whenever spans are exported,
    /// on `force_flush` and at shutdown (which prints every waiting trace); with the default
    /// clock, also once a second (or every `max_age / 4`) by a background thread, so a stuck
    /// trace shows up even when no other span arrives.
    pub fn clock(mut self, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the exporter. Every setting is valid (a cap of 0 means "buffer nothing").
    pub fn build(self) -> ConsoleExporter {
        let (writer, color) = match self.writer {
            Some(writer) => (writer, self.color.unwrap_or(false)),
            None => {
                let color = self.color.unwrap_or_else(|| {
                    std::io::stderr().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                });
                (Box::new(std::io::stderr()) as Box<dyn Write + Send>, color)
            }
        };
        let injected_clock = self.clock.is_some();
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(writer, self.max_pending_traces)),
            config: Config {
                color,
                max_pending_traces: self.max_pending_traces,
                max_spans_per_trace: self.max_spans_per_trace,
                max_age: self.max_age,
            },
            clock: self.clock.unwrap_or_else(|| Arc::new(Instant::now)),
        });
        let ticker = if injected_clock {
            None
        } else {
            spawn_ticker(&inner)
        };
        ConsoleExporter { inner, ticker }
    }
}

impl SpanExporter for ConsoleExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        std::future::ready(self.inner.export(batch))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let result = self.inner.shutdown();
        if let Some(ticker) = &self.ticker {
            ticker.unpark();
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.tick();
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.state.lock().service_name = resource
            .get(&Key::from_static_str(semconv::attribute::SERVICE_NAME))
            .map(|name| escaped(&name.as_str()));
    }
}

impl Drop for ConsoleExporter {
    fn drop(&mut self) {
        // The ticker holds only a weak reference: once woken it sees the exporter is gone.
        if let Some(ticker) = &self.ticker {
            ticker.unpark();
        }
    }
}

impl fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleExporter")
            .field("color", &self.inner.config.color)
            .field("max_pending_traces", &self.inner.config.max_pending_traces)
            .field(
                "max_spans_per_trace",
                &self.inner.config.max_spans_per_trace,
            )
            .field("max_age", &self.inner.config.max_age)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ConsoleExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleExporterBuilder")
            .field("color", &self.color)
            .field("max_pending_traces", &self.max_pending_traces)
            .field("max_spans_per_trace", &self.max_spans_per_trace)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

// ---- buffering --------------------------------------------------------------------------

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The exporter proper, shared with the ticker thread.
struct Inner {
    state: Mutex<State>,
    config: Config,
    clock: Clock,
}

/// Fixed settings of one exporter.
struct Config {
    color: bool,
    max_pending_traces: usize,
    max_spans_per_trace: usize,
    max_age: Duration,
}

/// Everything that changes, behind one lock (export is never concurrent, shutdown may be).
struct State {
    writer: Box<dyn Write + Send>,
    /// `service.name` of the resource, escaped, for the header line.
    service_name: Option<String>,
    /// Traces whose local root has not ended yet.
    pending: HashMap<TraceId, Pending>,
    /// The same traces by arrival, oldest first: `(first seen, sequence)`.
    by_age: BTreeMap<(Instant, u64), TraceId>,
    sequence: u64,
    /// Recently dropped traces, so their later spans (and root) are dropped too rather than
    /// printed as a misleading partial tree.
    dropped: RecentIds,
    /// Recently printed traces, so spans that end after their root are labelled as late.
    printed: RecentIds,
    /// Drops not reported on a warning line yet.
    unreported_spans: u64,
    unreported_traces: u64,
    last_warning: Option<Instant>,
    shut_down: bool,
}

/// One trace waiting for its local root.
struct Pending {
    age_key: (Instant, u64),
    nodes: Vec<Node>,
    dropped_spans: u64,
}

/// What the tree shows of one span, escaped and formatted once when it arrives (the rest of
/// the span is freed at once, which keeps the buffer small).
struct Node {
    span_id: SpanId,
    parent_id: SpanId,
    parent_is_remote: bool,
    start: SystemTime,
    end: SystemTime,
    name: String,
    /// `http.response.status_code`, `rpc.response.status_code` or `db.response.status_code`.
    code: Option<String>,
    /// `Some(message)` (possibly empty) when the status is an error.
    error: Option<String>,
    /// `key=value` pairs, space separated.
    attrs: String,
    /// One formatted line per event worth showing.
    events: Vec<String>,
}

/// A bounded set of recently seen trace ids; the oldest is forgotten first.
struct RecentIds {
    order: VecDeque<TraceId>,
    set: HashSet<TraceId>,
    cap: usize,
}

impl RecentIds {
    fn new(max_pending_traces: usize) -> Self {
        RecentIds {
            order: VecDeque::new(),
            set: HashSet::new(),
            cap: max_pending_traces.saturating_mul(4).max(RECENT_IDS_MIN),
        }
    }

    fn insert(&mut self, trace_id: TraceId) {
        if self.set.insert(trace_id) {
            self.order.push_back(trace_id);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, trace_id: &TraceId) -> bool {
        self.set.contains(trace_id)
    }
}

impl State {
    fn new(writer: Box<dyn Write + Send>, max_pending_traces: usize) -> Self {
        State {
            writer,
            service_name: None,
            pending: HashMap::new(),
            by_age: BTreeMap::new(),
            sequence: 0,
            dropped: RecentIds::new(max_pending_traces),
            printed: RecentIds::new(max_pending_traces),
            unreported_spans: 0,
            unreported_traces: 0,
            last_warning: None,
            shut_down: false,
        }
    }

    fn oldest_pending(&self) -> Option<TraceId> {
        self.by_age.first_key_value().map(|(_, id)| *id)
    }

    fn take_pending(&mut self, trace_id: TraceId) -> Option<Pending> {
        let pending = self.pending.remove(&trace_id)?;
        self.by_age.remove(&pending.age_key);
        Some(pending)
    }

    /// Writes one finished text block in a single call; output errors are ignored (a
    /// closed terminal must never fail the traced program).
    fn write(&mut self, text: &str) {
        let _ = self.writer.write_all(text.as_bytes());
    }
}

impl Inner {
    fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let now = (self.clock)();
        let mut state = self.state.lock();
        if state.shut_down {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        // Within one batch, buffer every child before handling roots, whatever the order.
        let (roots, children): (Vec<SpanData>, Vec<SpanData>) =
            batch.into_iter().partition(is_local_root);
        for span in children {
            self.buffer(&mut state, span, now);
        }
        for root in roots {
            self.complete(&mut state, root);
        }
        self.expire(&mut state, now);
        self.warn_dropped(&mut state, now, false);
        Ok(())
    }

    /// Prints what has waited `max_age` and the warning if one is due; `false` once shut down.
    fn tick(&self) -> bool {
        let now = (self.clock)();
        let mut state = self.state.lock();
        if state.shut_down {
            return false;
        }
        self.expire(&mut state, now);
        self.warn_dropped(&mut state, now, false);
        let _ = state.writer.flush();
        true
    }

    /// Prints every waiting trace as incomplete, then the last warning.
    fn shutdown(&self) -> OTelSdkResult {
        let now = (self.clock)();
        let mut state = self.state.lock();
        if state.shut_down {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        state.shut_down = true;
        while let Some(trace_id) = state.oldest_pending() {
            self.flush_incomplete(&mut state, trace_id);
        }
        self.warn_dropped(&mut state, now, true);
        // Best effort: a closed terminal must not fail the SDK shutdown.
        let _ = state.writer.flush();
        Ok(())
    }

    fn buffer(&self, state: &mut State, span: SpanData, now: Instant) {
        let trace_id = span.span_context.trace_id();
        if state.dropped.contains(&trace_id) {
            state.unreported_spans += 1;
            return;
        }
        let max_spans = self.config.max_spans_per_trace;
        if let Some(pending) = state.pending.get_mut(&trace_id) {
            if pending.nodes.len() >= max_spans {
                // Counted on the trace's own header line when it prints.
                pending.dropped_spans += 1;
            } else {
                pending.nodes.push(Node::from_span(&span));
            }
            return;
        }
        if self.config.max_pending_traces == 0 || max_spans == 0 {
            state.unreported_spans += 1;
            state.unreported_traces += 1;
            state.dropped.insert(trace_id);
            return;
        }
        while state.pending.len() >= self.config.max_pending_traces {
            let Some(oldest) = state.oldest_pending() else {
                break;
            };
            if let Some(evicted) = state.take_pending(oldest) {
                state.unreported_spans += evicted.nodes.len() as u64 + evicted.dropped_spans;
                state.unreported_traces += 1;
            }
            state.dropped.insert(oldest);
        }
        let age_key = (now, state.sequence);
        state.sequence += 1;
        state.by_age.insert(age_key, trace_id);
        state.pending.insert(
            trace_id,
            Pending {
                age_key,
                nodes: vec![Node::from_span(&span)],
                dropped_spans: 0,
            },
        );
    }

    fn complete(&self, state: &mut State, root: SpanData) {
        let trace_id = root.span_context.trace_id();
        if state.dropped.contains(&trace_id) {
            state.unreported_spans += 1;
            return;
        }
        let (nodes, dropped) = match state.take_pending(trace_id) {
            Some(pending) => (pending.nodes, pending.dropped_spans),
            None => (Vec::new(), 0),
        };
        let text = self.render(
            state.service_name.as_deref(),
            trace_id,
            Missing::Nothing(Node::from_span(&root)),
            nodes,
            dropped,
        );
        state.write(&text);
        state.printed.insert(trace_id);
    }

    /// Prints every trace that has waited `max_age` for its root.
    fn expire(&self, state: &mut State, now: Instant) {
        while let Some((&(first_seen, _), &trace_id)) = state.by_age.first_key_value()
            && now.saturating_duration_since(first_seen) >= self.config.max_age
        {
            self.flush_incomplete(state, trace_id);
        }
    }

    fn flush_incomplete(&self, state: &mut State, trace_id: TraceId) {
        if let Some(pending) = state.take_pending(trace_id) {
            let late = state.printed.contains(&trace_id);
            let text = self.render(
                state.service_name.as_deref(),
                trace_id,
                if late {
                    Missing::PrintedRoot
                } else {
                    Missing::Root
                },
                pending.nodes,
                pending.dropped_spans,
            );
            state.write(&text);
        }
    }

    /// One counted warning line for everything dropped since the last one, at most once per
    /// `max_age` (or at once when `force`d at shutdown).
    fn warn_dropped(&self, state: &mut State, now: Instant, force: bool) {
        if state.unreported_spans == 0 {
            return;
        }
        let due = state
            .last_warning
            .is_none_or(|last| now.saturating_duration_since(last) >= self.config.max_age);
        if !(force || due) {
            return;
        }
        let mut line = String::new();
        let text = format!(
            "⚠ console exporter: dropped {} spans of {} traces over its caps \
             (max_pending_traces={}, max_spans_per_trace={}); raise them with \
             ConsoleExporter::builder()",
            state.unreported_spans,
            state.unreported_traces,
            self.config.max_pending_traces,
            self.config.max_spans_per_trace,
        );
        paint(&mut line, self.config.color, YELLOW, &text);
        line.push('\n');
        state.write(&line);
        state.unreported_spans = 0;
        state.unreported_traces = 0;
        state.last_warning = Some(now);
    }
}

/// Starts the thread that ages waiting traces when no span arrives, at most once a second.
/// It holds a weak reference and ends when the exporter is dropped or shut down. Without it
/// (spawn failed), traces still age on every export, flush and at shutdown.
fn spawn_ticker(inner: &Arc<Inner>) -> Option<std::thread::Thread> {
    let weak = Arc::downgrade(inner);
    let interval =
        (inner.config.max_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    std::thread::Builder::new()
        .name("otel-console-tree".into())
        .spawn(move || {
            loop {
                std::thread::park_timeout(interval);
                match weak.upgrade() {
                    Some(inner) if inner.tick() => {}
                    _ => break,
                }
            }
        })
        .ok()
        .map(|handle| handle.thread().clone())
}

fn is_local_root(span: &SpanData) -> bool {
    span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote
}

// ---- what a line shows ------------------------------------------------------------------

/// Longest string value printed, in characters; longer values end with `…`.
const MAX_VALUE_CHARS: usize = 200;

/// Events shown under their span.
const SHOWN_EVENTS: [&str; 6] = [
    attributes::N_PLUS_ONE_EVENT,
    attributes::CIRCUIT_BREAKER_OPENED_EVENT,
    attributes::CIRCUIT_BREAKER_HALF_OPENED_EVENT,
    attributes::CIRCUIT_BREAKER_CLOSED_EVENT,
    attributes::RETRY_ATTEMPT_EVENT,
    attributes::RETRY_BUDGET_EXHAUSTED_EVENT,
];

/// Attributes printed bare, right after the duration.
const STATUS_CODES: [&str; 3] = [
    semconv::attribute::HTTP_RESPONSE_STATUS_CODE,
    semconv::attribute::RPC_RESPONSE_STATUS_CODE,
    semconv::attribute::DB_RESPONSE_STATUS_CODE,
];

/// Attributes printed as `key=value` on every span.
const SHOWN_ATTRIBUTES: [&str; 4] = [
    semconv::attribute::ERROR_TYPE,
    semconv::attribute::HTTP_REQUEST_RESEND_COUNT,
    attributes::REQUEST_ID,
    semconv::attribute::DB_RESPONSE_RETURNED_ROWS,
];

/// Namespaces printed whole (`retry.*`, `circuit_breaker.*`, `n_plus_one.*`), named by one
/// member of each.
const SHOWN_NAMESPACES: [&str; 3] = [
    attributes::RETRY_ATTEMPTS,
    attributes::CIRCUIT_BREAKER_STATE,
    attributes::N_PLUS_ONE_KIND,
];

impl Node {
    fn from_span(span: &SpanData) -> Node {
        let mut code = None;
        let mut attrs = String::new();
        // A span with `n_plus_one.detected` events shows each finding on its event line; the
        // span line keeps only the count of findings instead of repeating the largest one.
        let has_findings = span
            .events
            .iter()
            .any(|event| event.name == attributes::N_PLUS_ONE_EVENT);
        for KeyValue { key, value, .. } in &span.attributes {
            let key = key.as_str();
            if has_findings
                && key.starts_with("n_plus_one.")
                && key != attributes::N_PLUS_ONE_FINDINGS
            {
                continue;
            }
            if STATUS_CODES.contains(&key) {
                if code.is_none() {
                    let mut text = String::new();
                    push_value(&mut text, value);
                    code = Some(text);
                }
            } else if shows_attribute(key, &span.span_kind) {
                push_pair(&mut attrs, key, value);
            }
        }
        let error = match &span.status {
            Status::Error { description } => Some(escaped(description)),
            _ => None,
        };
        let events = span
            .events
            .iter()
            .filter(|event| SHOWN_EVENTS.contains(&event.name.as_ref()))
            .map(|event| {
                let mut line = escaped(&event.name);
                line.push_str("  +");
                let offset = event
                    .timestamp
                    .duration_since(span.start_time)
                    .unwrap_or_default();
                push_duration(&mut line, offset);
                let mut pairs = String::new();
                for KeyValue { key, value, .. } in &event.attributes {
                    // The bridge adds `level`, `target` and `code.*` to every event: noise in
                    // an incident tree.
                    let key = key.as_str();
                    if key == "level" || key == "target" || key.starts_with("code.") {
                        continue;
                    }
                    push_pair(&mut pairs, key, value);
                }
                if !pairs.is_empty() {
                    line.push_str("  ");
                    line.push_str(&pairs);
                }
                line
            })
            .collect();
        Node {
            span_id: span.span_context.span_id(),
            parent_id: span.parent_span_id,
            parent_is_remote: span.parent_span_is_remote,
            start: span.start_time,
            end: span.end_time,
            name: escaped(&span.name),
            code,
            error,
            attrs,
            events,
        }
    }

    fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }
}

fn shows_attribute(key: &str, kind: &SpanKind) -> bool {
    SHOWN_ATTRIBUTES.contains(&key)
        || (key == semconv::attribute::SERVER_ADDRESS && *kind == SpanKind::Client)
        || SHOWN_NAMESPACES
            .iter()
            .any(|member| namespace(member).is_some_and(|ns| namespace(key) == Some(ns)))
}

/// `retry` for `retry.delay_ms`.
fn namespace(key: &str) -> Option<&str> {
    key.split_once('.').map(|(ns, _)| ns)
}

// ---- the tree ---------------------------------------------------------------------------

/// Siblings with the same name, in a row, that collapse into one `×N` line.
const COLLAPSE_MIN: usize = 5;
/// Deepest level drawn; deeper spans are counted on one line (bounded indentation).
const MAX_DEPTH: usize = 32;

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// What a printed trace lacks.
enum Missing {
    /// Complete: here is its local root.
    Nothing(Node),
    /// The root has not ended within `max_age` (or before shutdown).
    Root,
    /// These spans ended after their root, which was printed before them.
    PrintedRoot,
}

/// One list of siblings being drawn: runs of `(first index in kids, length)`.
struct Frame {
    kids: Vec<usize>,
    runs: Vec<(usize, usize)>,
    next: usize,
    prefix: String,
    depth: usize,
}

impl Inner {
    /// Draws one trace: the header line, then the root (or, for an incomplete trace, every
    /// span whose parent has not arrived) and its descendants. Iterative, so a deep or
    /// hostile parent chain cannot overflow the stack; every span is drawn at most once.
    fn render(
        &self,
        service_name: Option<&str>,
        trace_id: TraceId,
        root: Missing,
        mut nodes: Vec<Node>,
        dropped: u64,
    ) -> String {
        let color = self.config.color;
        let late = matches!(root, Missing::PrintedRoot);
        let root_index = match root {
            Missing::Nothing(root) => {
                nodes.push(root);
                Some(nodes.len() - 1)
            }
            Missing::Root | Missing::PrintedRoot => None,
        };
        let count = nodes.len();
        let mut index_of: HashMap<SpanId, usize> = HashMap::with_capacity(count);
        for (i, node) in nodes.iter().enumerate() {
            index_of.entry(node.span_id).or_insert(i);
        }
        let mut linked: Vec<Vec<usize>> = vec![Vec::new(); count];
        let mut tops = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if Some(i) == root_index {
                continue;
            }
            match index_of.get(&node.parent_id) {
                Some(&parent) if parent != i => linked[parent].push(i),
                // Parent not ended yet (or never exported): hang it under the root.
                _ => match root_index {
                    Some(root) => linked[root].push(i),
                    None => tops.push(i),
                },
            }
        }
        let starts = match root_index {
            Some(root) => vec![root],
            None => tops,
        };

        // Spanning tree from the starts: each span once, even with duplicate ids or cycles.
        let mut visited = vec![false; count];
        let mut tree: Vec<Vec<usize>> = vec![Vec::new(); count];
        let mut order = Vec::with_capacity(count);
        let mut stack = starts.clone();
        for &s in &starts {
            visited[s] = true;
        }
        while let Some(u) = stack.pop() {
            order.push(u);
            for &child in &linked[u] {
                if !visited[child] {
                    visited[child] = true;
                    tree[u].push(child);
                    stack.push(child);
                }
            }
        }
        let mut subtree = vec![1usize; count];
        for &u in order.iter().rev() {
            subtree[u] += tree[u].iter().map(|&c| subtree[c]).sum::<usize>();
        }
        let by_start = |kids: &mut Vec<usize>| kids.sort_by_key(|&i| (nodes[i].start, i));
        for kids in &mut tree {
            by_start(kids);
        }
        let mut starts = starts;
        by_start(&mut starts);

        let mut out = String::new();
        // Header.
        let mut header = format!("trace {trace_id}");
        if let Some(service) = service_name {
            header.push_str("  ");
            header.push_str(service);
        }
        paint(&mut out, color, BOLD, &header);
        match root_index.map(|r| &nodes[r]) {
            Some(root) => {
                out.push_str("  ");
                push_duration(&mut out, root.duration());
                if root.error.is_some() {
                    out.push_str("  ");
                    paint(&mut out, color, RED, "ERROR");
                }
                if root.parent_is_remote && root.parent_id != SpanId::INVALID {
                    let _ = write!(out, "  (continues remote parent {})", root.parent_id);
                }
            }
            None if late => out.push_str("  (incomplete: ended after the root was printed)"),
            None => out.push_str("  (incomplete)"),
        }
        if dropped > 0 {
            let _ = write!(
                out,
                "  ({dropped} spans dropped over max_spans_per_trace={})",
                self.config.max_spans_per_trace
            );
        }
        out.push('\n');

        // Body.
        let mut frames = vec![Frame::new(starts, String::new(), 0, &nodes)];
        while let Some(frame) = frames.last_mut() {
            if frame.next == frame.runs.len() {
                frames.pop();
                continue;
            }
            let (first, len) = frame.runs[frame.next];
            frame.next += 1;
            let last = frame.next == frame.runs.len();
            let run: Vec<usize> = frame.kids[first..first + len].to_vec();
            let depth = frame.depth;
            let mut child_prefix = frame.prefix.clone();
            out.push_str(&frame.prefix);
            out.push_str(if last { "└─ " } else { "├─ " });
            child_prefix.push_str(if last { "   " } else { "│  " });

            if len >= COLLAPSE_MIN {
                push_collapsed(&mut out, &nodes, &run, &subtree, color);
                continue;
            }
            let u = run[0];
            push_line(&mut out, &nodes[u], color);
            let has_kids = !tree[u].is_empty();
            for event in &nodes[u].events {
                out.push_str(&child_prefix);
                out.push_str(if has_kids { "│  " } else { "   " });
                paint(&mut out, color, DIM, "• ");
                out.push_str(event);
                out.push('\n');
            }
            if has_kids {
                if depth + 1 >= MAX_DEPTH {
                    let _ = writeln!(
                        out,
                        "{child_prefix}└─ … {} deeper spans not shown",
                        subtree[u] - 1
                    );
                } else {
                    let kids = std::mem::take(&mut tree[u]);
                    frames.push(Frame::new(kids, child_prefix, depth + 1, &nodes));
                }
            }
        }
        let unlinked = visited.iter().filter(|v| !**v).count();
        if unlinked > 0 {
            let _ = writeln!(out, "   … {unlinked} spans in a parent cycle not shown");
        }
        out
    }
}

impl Frame {
    fn new(kids: Vec<usize>, prefix: String, depth: usize, nodes: &[Node]) -> Frame {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < kids.len() {
            let mut j = i + 1;
            while j < kids.len() && nodes[kids[j]].name == nodes[kids[i]].name {
                j += 1;
            }
            if j - i >= COLLAPSE_MIN {
                runs.push((i, j - i));
            } else {
                runs.extend((i..j).map(|k| (k, 1)));
            }
            i = j;
        }
        Frame {
            kids,
            runs,
            next: 0,
            prefix,
            depth,
        }
    }
}

/// `name  duration  [code]  [ERROR[: message]]  [key=value ...]`
fn push_line(out: &mut String, node: &Node, color: bool) {
    out.push_str(&node.name);
    out.push_str("  ");
    push_duration(out, node.duration());
    if let Some(code) = &node.code {
        out.push_str("  ");
        out.push_str(code);
    }
    if let Some(message) = &node.error {
        out.push_str("  ");
        if message.is_empty() {
            paint(out, color, RED, "ERROR");
        } else {
            paint(out, color, RED, &format!("ERROR: {message}"));
        }
    }
    if !node.attrs.is_empty() {
        out.push_str("  ");
        out.push_str(&node.attrs);
    }
    out.push('\n');
}

/// `name  ×N  total T  max M  [ERROR ×E]  [(+K nested spans)]`
fn push_collapsed(out: &mut String, nodes: &[Node], run: &[usize], subtree: &[usize], color: bool) {
    let total: Duration = run.iter().map(|&i| nodes[i].duration()).sum();
    let max = run
        .iter()
        .map(|&i| nodes[i].duration())
        .max()
        .unwrap_or_default();
    let errors = run.iter().filter(|&&i| nodes[i].error.is_some()).count();
    let nested: usize = run.iter().map(|&i| subtree[i] - 1).sum();
    let _ = write!(out, "{}  ×{}  total ", nodes[run[0]].name, run.len());
    push_duration(out, total);
    out.push_str("  max ");
    push_duration(out, max);
    if errors > 0 {
        out.push_str("  ");
        paint(out, color, RED, &format!("ERROR ×{errors}"));
    }
    if nested > 0 {
        let _ = write!(out, "  (+{nested} nested spans)");
    }
    out.push('\n');
}

fn paint(out: &mut String, color: bool, code: &str, text: &str) {
    if color {
        out.push_str(code);
        out.push_str(text);
        out.push_str(RESET);
    } else {
        out.push_str(text);
    }
}

// ---- values -----------------------------------------------------------------------------

/// Human duration, rounded down: `850µs`, `2.5ms`, `200ms`, `1.24s`, `125s`.
fn push_duration(out: &mut String, d: Duration) {
    let micros = d.as_micros();
    let _ = if micros < 1_000 {
        write!(out, "{micros}µs")
    } else if micros < 10_000 {
        let tenths = micros / 100;
        if tenths.is_multiple_of(10) {
            write!(out, "{}ms", tenths / 10)
        } else {
            write!(out, "{}.{}ms", tenths / 10, tenths % 10)
        }
    } else if micros < 1_000_000 {
        write!(out, "{}ms", micros / 1_000)
    } else if micros < 100_000_000 {
        let centis = micros / 10_000;
        write!(out, "{}.{:02}s", centis / 100, centis % 100)
    } else {
        write!(out, "{}s", d.as_secs())
    };
}

/// ` key=value` appended to a space-separated list.
fn push_pair(out: &mut String, key: &str, value: &Value) {
    if !out.is_empty() {
        out.push(' ');
    }
    push_escaped(out, key);
    out.push('=');
    push_value(out, value);
}

/// Strings are escaped, cut at [`MAX_VALUE_CHARS`] and quoted when they contain spaces,
/// quotes or `=` (or are empty); other values are printed as they are (and escaped too).
fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => {
            let s = s.as_str();
            let quote = s.is_empty()
                || s.chars()
                    .take(MAX_VALUE_CHARS)
                    .any(|c| c.is_whitespace() || c == '"' || c == '=' || must_escape(c));
            if quote {
                out.push('"');
            }
            push_escaped(out, s);
            if quote {
                out.push('"');
            }
        }
        other => push_escaped(out, &other.to_string()),
    }
}

fn escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_VALUE_CHARS));
    push_escaped(&mut out, s);
    out
}

/// Appends `s` with every control, bidi-override and invisible format character written as
/// an escape (`\n`, `\u{1b}`), so no value can move the cursor, recolour the terminal or
/// reorder the line; cut at [`MAX_VALUE_CHARS`] characters with `…`.
// Hand-written: `str::escape_debug` leaves bidi and zero-width characters as they are.
fn push_escaped(out: &mut String, s: &str) {
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX_VALUE_CHARS) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
}

fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    #[derive(Clone, Default)]
    struct Terminal(Arc<Mutex<Vec<u8>>>);

    impl Write for Terminal {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Terminal {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().clone()).unwrap()
        }
    }

    /// An exporter on a manual clock, fed `SpanData` directly (no SDK in between).
    fn exporter(terminal: &Terminal, now: &Arc<Mutex<Instant>>) -> ConsoleExporter {
        let now = now.clone();
        ConsoleExporter::builder()
            .writer(terminal.clone())
            .clock(move || *now.lock())
            .max_age(Duration::from_secs(5))
            .build()
    }

    fn span(id: u64, parent: u64, name: &'static str, start_ms: u64, end_ms: u64) -> SpanData {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(7u128),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: name.into(),
            start_time: t0 + Duration::from_millis(start_ms),
            end_time: t0 + Duration::from_millis(end_ms),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[test]
    fn a_deep_parent_chain_is_drawn_to_a_bounded_depth() {
        let terminal = Terminal::default();
        let exporter = exporter(&terminal, &Arc::new(Mutex::new(Instant::now())));
        let mut batch: Vec<SpanData> = (2..=100).map(|id| span(id, id - 1, "step", 0, 1)).collect();
        batch.push(span(1, 0, "root", 0, 1));
        exporter.inner.export(batch).unwrap();
        let text = terminal.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + MAX_DEPTH + 1, "{text}");
        assert!(lines[1].starts_with("└─ root  1ms"));
        assert_eq!(
            lines.last().unwrap().trim_start(),
            "└─ … 68 deeper spans not shown"
        );
        assert!(lines.iter().all(|l| l.chars().count() < 3 * MAX_DEPTH + 40));
    }

    #[test]
    fn cycles_duplicate_ids_and_self_parents_neither_loop_nor_panic() {
        let terminal = Terminal::default();
        let exporter = exporter(&terminal, &Arc::new(Mutex::new(Instant::now())));
        exporter
            .inner
            .export(vec![
                span(2, 3, "cycle a", 1, 2),
                span(3, 2, "cycle b", 1, 2),
                span(4, 1, "dup", 2, 3),
                span(4, 1, "dup twin", 3, 4),
                span(5, 4, "under dup", 4, 5),
                span(6, 6, "self parent", 5, 6),
                span(1, 0, "root", 0, 10),
            ])
            .unwrap();
        assert_eq!(
            terminal.text(),
            "\
trace 00000000000000000000000000000007  10ms
└─ root  10ms
   ├─ dup  1ms
   │  └─ under dup  1ms
   ├─ dup twin  1ms
   └─ self parent  1ms
   … 2 spans in a parent cycle not shown
"
        );
    }

    #[test]
    fn force_flush_prints_what_has_waited_max_age() {
        let terminal = Terminal::default();
        let now = Arc::new(Mutex::new(Instant::now()));
        let exporter = exporter(&terminal, &now);
        exporter
            .inner
            .export(vec![span(2, 1, "child", 0, 1)])
            .unwrap();
        exporter.force_flush().unwrap();
        assert_eq!(terminal.text(), "");
        *now.lock() += Duration::from_secs(5);
        exporter.force_flush().unwrap();
        assert_eq!(
            terminal.text(),
            "trace 00000000000000000000000000000007  (incomplete)\n└─ child  1ms\n"
        );
        exporter.shutdown().unwrap();
        assert!(exporter.shutdown().is_err());
        assert!(
            exporter
                .inner
                .export(vec![span(1, 0, "late", 0, 1)])
                .is_err()
        );
    }

    fn duration(d: Duration) -> String {
        let mut out = String::new();
        push_duration(&mut out, d);
        out
    }

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(duration(Duration::ZERO), "0µs");
        assert_eq!(duration(Duration::from_nanos(850_999)), "850µs");
        assert_eq!(duration(Duration::from_micros(2_000)), "2ms");
        assert_eq!(duration(Duration::from_micros(2_550)), "2.5ms");
        assert_eq!(duration(Duration::from_millis(200)), "200ms");
        assert_eq!(duration(Duration::from_millis(1_240)), "1.24s");
        assert_eq!(duration(Duration::from_millis(60_000)), "60.00s");
        assert_eq!(duration(Duration::from_secs(125)), "125s");
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(escaped("a\x1b[31mb\x07"), "a\\u{1b}[31mb\\u{7}");
        assert_eq!(escaped("line\nnext\ttab\r"), "line\\nnext\\ttab\\r");
        assert_eq!(escaped("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escaped("abc\u{202E}fed"), "abc\\u{202e}fed");
        assert_eq!(escaped("q\"\\"), "q\\\"\\\\");
        assert_eq!(escaped("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn long_values_are_cut_at_200_characters() {
        let long = "é".repeat(500);
        let out = escaped(&long);
        assert_eq!(out.chars().count(), 201);
        assert!(out.ends_with('…'));
        assert_eq!(escaped(&"x".repeat(200)), "x".repeat(200));
    }

    #[test]
    fn strings_with_spaces_are_quoted_and_numbers_are_not() {
        let mut out = String::new();
        push_pair(
            &mut out,
            "n_plus_one.shape",
            &"SELECT * WHERE id = ?".into(),
        );
        push_pair(&mut out, "retry.delay_ms", &Value::I64(100));
        push_pair(&mut out, "request.id", &"abc".into());
        push_pair(&mut out, "request.id", &"".into());
        assert_eq!(
            out,
            r#"n_plus_one.shape="SELECT * WHERE id = ?" retry.delay_ms=100 request.id=abc request.id="""#
        );
    }

    #[test]
    fn only_incident_attributes_are_shown() {
        assert!(shows_attribute("retry.delay_ms", &SpanKind::Internal));
        assert!(shows_attribute("circuit_breaker.state", &SpanKind::Client));
        assert!(shows_attribute("n_plus_one.count", &SpanKind::Server));
        assert!(shows_attribute("error.type", &SpanKind::Server));
        assert!(shows_attribute("server.address", &SpanKind::Client));
        assert!(!shows_attribute("server.address", &SpanKind::Server));
        assert!(!shows_attribute("db.query.text", &SpanKind::Client));
        assert!(!shows_attribute("retryx", &SpanKind::Client));
        assert!(!shows_attribute("url.full", &SpanKind::Client));
    }

    #[test]
    fn frames_collapse_five_same_named_siblings_in_a_row_only() {
        let node = |name: &str| Node {
            span_id: SpanId::INVALID,
            parent_id: SpanId::INVALID,
            parent_is_remote: false,
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH,
            name: name.to_owned(),
            code: None,
            error: None,
            attrs: String::new(),
            events: Vec::new(),
        };
        let names = ["a", "q", "q", "q", "q", "q", "b", "q", "q", "q", "q"];
        let nodes: Vec<Node> = names.iter().map(|n| node(n)).collect();
        let frame = Frame::new((0..nodes.len()).collect(), String::new(), 0, &nodes);
        assert_eq!(
            frame.runs,
            vec![(0, 1), (1, 5), (6, 1), (7, 1), (8, 1), (9, 1), (10, 1)]
        );
    }
}
