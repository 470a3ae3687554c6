//! The log and span filter: `RUST_LOG` syntax (`tracing-subscriber`'s `EnvFilter`), with a
//! check that it keeps the spans this workspace's layers create.
//!
//! The layers of otel-http, otel-grpc, otel-sql and otel-resilience create INFO-level spans
//! with the targets `otel_http`, `otel_grpc`, `otel_sql` and `otel_resilience`. A filter such
//! as `RUST_LOG=warn` drops them before they reach OpenTelemetry, and traces go missing
//! without a word; [`dropped_span_targets`] finds that out, and
//! [`Telemetry::install`](super::Telemetry::install) warns once on stderr, naming the
//! directive to add.
//!
//! ```
//! use otel_core::telemetry::{env_filter, dropped_span_targets};
//!
//! let filter = env_filter("warn,otel_http=info").unwrap();
//! # drop(filter);
//! assert_eq!(dropped_span_targets("warn,otel_http=info"), ["otel_grpc", "otel_sql", "otel_resilience"]);
//! assert!(dropped_span_targets("info").is_empty());
//! ```

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;

use super::error::SetupError;

/// The targets (and level, INFO) of the spans the layers of this workspace create.
pub const SPAN_TARGETS: [&str; 4] = ["otel_http", "otel_grpc", "otel_sql", "otel_resilience"];

/// Builds an `EnvFilter` from `RUST_LOG`-style directives (`info,otel_sql=debug`). A
/// directive that does not parse is refused rather than silently ignored.
pub fn env_filter(directives: &str) -> Result<EnvFilter, SetupError> {
    env_filter_from(directives, "Telemetry::log_filter")
}

/// Which of [`SPAN_TARGETS`] the filter `directives` would drop at INFO level.
pub fn dropped_span_targets(directives: &str) -> Vec<&'static str> {
    let Ok(filter) = EnvFilter::try_new(directives) else {
        return Vec::new();
    };
    // Ask a throwaway subscriber with this filter whether each target's INFO span is enabled.
    // The probe spans are never entered, and the subscriber only lives for these four calls.
    let subscriber = tracing_subscriber::registry().with(filter);
    tracing::subscriber::with_default(subscriber, || {
        let enabled = [
            tracing::span!(target: "otel_http", Level::INFO, "probe").is_disabled(),
            tracing::span!(target: "otel_grpc", Level::INFO, "probe").is_disabled(),
            tracing::span!(target: "otel_sql", Level::INFO, "probe").is_disabled(),
            tracing::span!(target: "otel_resilience", Level::INFO, "probe").is_disabled(),
        ];
        SPAN_TARGETS
            .iter()
            .zip(enabled)
            .filter(|(_, disabled)| *disabled)
            .map(|(target, _)| *target)
            .collect()
    })
}

// ---- helpers --------------------------------------------------------------------------------

pub(crate) fn env_filter_from(
    directives: &str,
    setting: &'static str,
) -> Result<EnvFilter, SetupError> {
    EnvFilter::builder().parse(directives).map_err(|e| {
        SetupError::invalid(
            setting,
            format!("invalid filter directive: {e}"),
            "use `tracing-subscriber` EnvFilter syntax, e.g. `info,otel_sql=debug`",
        )
    })
}

/// The message printed once when the filter drops our spans.
pub(crate) fn dropped_targets_warning(directives: &str, dropped: &[&str]) -> String {
    let add: Vec<String> = dropped.iter().map(|t| format!("{t}=info")).collect();
    format!(
        "otel-core: warning: the log filter {directives:?} drops the INFO spans of {} \
         (no traces from them will be exported); add `{}` to RUST_LOG or \
         Telemetry::log_filter, e.g. `{directives},{}`",
        dropped.join(", "),
        add.join(","),
        add.join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_filters_that_drop_our_spans() {
        assert_eq!(dropped_span_targets("warn"), SPAN_TARGETS);
        assert_eq!(dropped_span_targets("error,otel_sql=debug").len(), 3);
        assert!(dropped_span_targets("info").is_empty());
        assert!(
            dropped_span_targets(
                "warn,otel_http=info,otel_grpc=info,otel_sql=info,otel_resilience=trace"
            )
            .is_empty()
        );
        assert!(dropped_span_targets("trace").is_empty());
        assert_eq!(dropped_span_targets("info,otel_sql=off"), ["otel_sql"]);
    }

    #[test]
    fn warning_names_the_directive_to_add() {
        let w = dropped_targets_warning("warn", &["otel_http", "otel_sql"]);
        assert!(w.contains("add `otel_http=info,otel_sql=info`"), "{w}");
        assert!(w.contains("RUST_LOG"), "{w}");
    }

    #[test]
    fn bad_directives_are_refused() {
        let e = env_filter("info,otel_sql=loud").unwrap_err();
        assert_eq!(e.setting(), Some("Telemetry::log_filter"));
        assert!(env_filter("info,otel_sql=debug").is_ok());
    }
}
