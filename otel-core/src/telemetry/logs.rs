//! Log lines that say which request they belong to: a `tracing-subscriber` fmt layer whose
//! every line inside a request carries `trace_id`, `span_id` and `request_id`.
//!
//! Where the ids come from, in order:
//! - `request_id`: the `request.id` field recorded on the event's span or any of its
//!   parents (the server layers record it on the server span); else the [`RequestId`] in the
//!   OpenTelemetry context of that span; else the one in the attached
//!   [`Context::current`] (an unsampled request has no span, only an attached context).
//! - `trace_id` / `span_id`: the OpenTelemetry context of the event's span (bridged by
//!   `tracing-opentelemetry`), else the attached [`Context::current`].
//!
//! Outside a request (no span, no attached context) lines carry none of them.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! use otel_core::telemetry::{log_layer_with, LogFormat};
//!
//! let subscriber = tracing_subscriber::registry()
//!     .with(log_layer_with(LogFormat::Json, std::io::stderr));
//! tracing::subscriber::with_default(subscriber, || tracing::info!("ready"));
//! ```
//!
//! Text lines end in ` trace_id=… span_id=… request_id=…`; JSON lines hold the keys
//! `"trace_id"`, `"span_id"` and `"request_id"` at the top level.

use std::sync::{Arc, OnceLock};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber, span};
use tracing_core::dispatcher::{Dispatch, WeakDispatch};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer;
use tracing_subscriber::registry::LookupSpan;

use super::config::LogFormat;
use crate::RequestId;
use crate::attributes::REQUEST_ID;

/// A type-erased layer, as returned by [`log_layer`] and [`log_layer_with`].
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

/// Text log lines on stdout, with `trace_id`, `span_id` and `request_id` inside a request;
/// coloured when stdout is a terminal and `NO_COLOR` is unset.
pub fn log_layer<S>() -> BoxedLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    log_layer_inner(LogFormat::Text, std::io::stdout, stdout_wants_colour())
}

/// Log lines in `format` written to `writer` (anything `tracing-subscriber` accepts as a
/// [`MakeWriter`]: `std::io::stderr`, a non-blocking appender, a test buffer), without colour.
pub fn log_layer_with<S, W>(format: LogFormat, writer: W) -> BoxedLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    log_layer_inner(format, writer, false)
}

// ---- helpers --------------------------------------------------------------------------------

/// Whether log lines on stdout should carry ANSI colours.
pub(crate) fn stdout_wants_colour() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

pub(crate) fn log_layer_inner<S, W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let dispatch = Arc::new(OnceLock::new());
    let recorder = RequestIdRecorder {
        dispatch: dispatch.clone(),
    };
    match format {
        LogFormat::Text => {
            let fmt = tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(writer)
                .event_format(Correlated {
                    inner: format::Format::default().with_ansi(ansi),
                    json: false,
                    dispatch,
                });
            Box::new(recorder.and_then(fmt))
        }
        LogFormat::Json => {
            let fmt = tracing_subscriber::fmt::layer()
                .json()
                .with_writer(writer)
                .event_format(Correlated {
                    inner: format::Format::default().json(),
                    json: true,
                    dispatch,
                });
            Box::new(recorder.and_then(fmt))
        }
    }
}

/// The `request.id` value recorded on a span, kept in the span's extensions.
#[derive(Debug, Clone)]
struct RecordedRequestId(RequestId);

/// Records the `request.id` field of spans into their extensions (on creation and on
/// `Span::record`), and remembers the dispatcher so the formatter can ask
/// `tracing-opentelemetry` for a span's context.
struct RequestIdRecorder {
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S> Layer<S> for RequestIdRecorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: layer::Context<'_, S>) {
        let mut visitor = RequestIdVisitor(None);
        attrs.record(&mut visitor);
        if let (Some(value), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().replace(RecordedRequestId(value));
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: layer::Context<'_, S>) {
        let mut visitor = RequestIdVisitor(None);
        values.record(&mut visitor);
        if let (Some(value), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().replace(RecordedRequestId(value));
        }
    }
}

/// Keeps the `request.id` field only when it is a valid request id, so that a value recorded
/// by hand cannot inject a line break or a quote into the log line.
struct RequestIdVisitor(Option<RequestId>);

impl Visit for RequestIdVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == REQUEST_ID {
            self.0 = RequestId::parse(value.as_bytes()).ok();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == REQUEST_ID {
            // `%id` (Display) arrives here unquoted; `?id` of a string arrives quoted.
            let s = format!("{value:?}");
            self.0 = RequestId::parse(s.trim_matches('"').as_bytes()).ok();
        }
    }
}

/// Wraps a `tracing-subscriber` event format and appends the correlation ids to each line.
///
/// Hand-written because `tracing-subscriber` has no hook to add fields to a line; the inner
/// format does all the formatting, we only append.
struct Correlated<F> {
    inner: F,
    json: bool,
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S, N, F> FormatEvent<S, N> for Correlated<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let (span_context, request_id) = self.correlation(ctx);
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n');
        if self.json {
            let Some(body) = line.strip_suffix('}') else {
                return writeln!(writer, "{line}");
            };
            let mut sep = if body.trim_end().ends_with('{') {
                ""
            } else {
                ","
            };
            writer.write_str(body)?;
            if let Some(sc) = &span_context {
                write!(
                    writer,
                    "{sep}\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                    sc.trace_id(),
                    sc.span_id()
                )?;
                sep = ",";
            }
            if let Some(id) = &request_id {
                let quoted = serde_json::to_string(id).map_err(|_| std::fmt::Error)?;
                write!(writer, "{sep}\"request_id\":{quoted}")?;
            }
            writer.write_str("}\n")
        } else {
            writer.write_str(line)?;
            if let Some(sc) = &span_context {
                write!(
                    writer,
                    " trace_id={} span_id={}",
                    sc.trace_id(),
                    sc.span_id()
                )?;
            }
            if let Some(id) = &request_id {
                write!(writer, " request_id={id}")?;
            }
            writer.write_char('\n')
        }
    }
}

impl<F> Correlated<F> {
    /// The span context and request id of the event: from its span scope first, then from the
    /// attached OpenTelemetry context.
    fn correlation<S, N>(&self, ctx: &FmtContext<'_, S, N>) -> (Option<SpanContext>, Option<String>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let mut request_id = None;
        let mut span_cx = None;
        if let Some(scope) = ctx.event_scope() {
            let mut leaf = None;
            for span in scope {
                if leaf.is_none() {
                    leaf = Some(span.id());
                }
                if let Some(recorded) = span.extensions().get::<RecordedRequestId>() {
                    request_id = Some(recorded.0.as_str().to_owned());
                    break;
                }
            }
            // No extension guard is held here, as `get_otel_context` requires.
            span_cx = leaf.and_then(|id| {
                let dispatch = self.dispatch.get()?.upgrade()?;
                tracing_opentelemetry::get_otel_context(&id, &dispatch)
            });
        }
        let attached = Context::current();
        for cx in span_cx.iter().chain(std::iter::once(&attached)) {
            if request_id.is_none() {
                request_id = RequestId::from_context(cx).map(|id| id.as_str().to_owned());
            }
        }
        let span_context = span_cx
            .iter()
            .chain(std::iter::once(&attached))
            .map(|cx| cx.span().span_context().clone())
            .find(SpanContext::is_valid);
        (span_context, request_id)
    }
}
