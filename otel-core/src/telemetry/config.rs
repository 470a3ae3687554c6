//! Where settings come from: the environment variables of the OpenTelemetry specification,
//! read through a small injectable [`EnvSource`] so tests never touch the process
//! environment, and the parsers that turn their values into settings (or a [`SetupError`]
//! that names the variable and the fix).
//!
//! ```
//! use std::collections::HashMap;
//! use otel_core::telemetry::{EnvSource, Telemetry};
//!
//! let env = HashMap::from([("OTEL_SERVICE_NAME", "checkout")]);
//! assert_eq!(env.var("OTEL_SERVICE_NAME").as_deref(), Some("checkout"));
//! let settings = Telemetry::builder().env(env).resolve().unwrap();
//! assert_eq!(settings.service_name, "checkout");
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Sampler;
use percent_encoding::percent_decode_str;

use super::error::SetupError;

/// A source of environment variables. [`ProcessEnv`] reads the process environment; a
/// `HashMap` of names to values stands in for it in tests. An empty value counts as unset, as
/// the OpenTelemetry specification says.
pub trait EnvSource: Send + Sync {
    /// The value of variable `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment (`std::env::var`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<K, V> EnvSource for HashMap<K, V>
where
    K: Borrow<str> + Hash + Eq + Send + Sync,
    V: AsRef<str> + Send + Sync,
{
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.as_ref().to_owned())
    }
}

/// The environment variables [`Telemetry`](super::Telemetry) reads.
pub mod vars {
    /// `service.name` of the resource.
    pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// Extra resource attributes, `key1=value1,key2=value2`, values percent-encoded.
    pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// `true` switches all telemetry off (a no-op that costs nothing).
    pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
    /// The sampler name.
    pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
    /// The sampler argument (a ratio in `[0, 1]` for the ratio samplers).
    pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    /// `otlp`, `console` or `none`.
    pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
    /// Base OTLP endpoint (`/v1/traces` is appended for `http/protobuf`).
    pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// OTLP endpoint for traces, used as is.
    pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    /// `grpc` or `http/protobuf`.
    pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// Protocol for traces (wins over the general one).
    pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    /// Headers sent with every export, `key1=value1,key2=value2`, values percent-encoded.
    pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    /// Headers for trace exports (added to, and winning over, the general ones).
    pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
    /// Export timeout in milliseconds.
    pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
    /// Export timeout for traces in milliseconds.
    pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
    /// Where metrics go: `otlp` or `none` (default `otlp` when traces go to OTLP).
    pub const OTEL_METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
    /// Milliseconds between two metric exports (default 60000).
    pub const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
    /// Metric export timeout in milliseconds (default: the OTLP timeout).
    pub const OTEL_METRIC_EXPORT_TIMEOUT: &str = "OTEL_METRIC_EXPORT_TIMEOUT";
    /// OTLP endpoint for metrics, used as is.
    pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
    /// Protocol for metrics (wins over the general one).
    pub const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
    /// Headers for metric exports (added to, and winning over, the general ones).
    pub const OTEL_EXPORTER_OTLP_METRICS_HEADERS: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";
    /// Export timeout for metrics in milliseconds.
    pub const OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
    /// The batch span processor's queue size (spans beyond it are dropped and counted).
    pub const OTEL_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
    /// Comma-separated propagator names.
    pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";
    /// The log filter, `tracing-subscriber` `EnvFilter` syntax.
    pub const RUST_LOG: &str = "RUST_LOG";
    /// Log line format: `text` or `json` (our name; no OpenTelemetry variable covers it).
    pub const OTEL_LOG_FORMAT: &str = "OTEL_LOG_FORMAT";
}

/// Where a trace goes when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracesExporter {
    /// OTLP over gRPC or HTTP/protobuf (see [`OtlpProtocol`]).
    Otlp,
    /// Each finished local trace printed as a tree on stderr.
    Console,
    /// Nowhere (spans are still sampled and propagated).
    None,
}

/// Where metrics go (the global meter provider that the layers of this workspace record on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExporter {
    /// OTLP, to the same collector as the traces (same protocol, endpoint rules, headers and
    /// resource), every export interval and at shutdown.
    Otlp,
    /// Nowhere: no meter provider is installed, instruments are no-ops.
    None,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (feature `otlp-grpc`; default port 4317). Install inside a tokio runtime.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (feature `otlp-http`; default port 4318).
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name used by `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines ending in ` trace_id=… span_id=… request_id=…`.
    #[default]
    Text,
    /// One JSON object per line with `trace_id`, `span_id` and `request_id` keys.
    Json,
}

// ---- parsers (crate-private) --------------------------------------------------------------

/// A value and the name of the setting it came from (env var or builder method), for errors.
#[derive(Debug, Clone)]
pub(crate) struct Sourced<T> {
    pub(crate) value: T,
    pub(crate) from: &'static str,
}

/// Reads `name`, treating an empty (or all-blank) value as unset.
pub(crate) fn read(env: &dyn EnvSource, name: &'static str) -> Option<Sourced<String>> {
    env.var(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .map(|value| Sourced { value, from: name })
}

pub(crate) fn parse_bool(s: &Sourced<String>) -> Result<bool, SetupError> {
    match s.value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SetupError::invalid(
            s.from,
            format!("{:?} is not a boolean", s.value),
            "use `true` or `false`",
        )),
    }
}

/// Builds the sampler named by `OTEL_TRACES_SAMPLER` with its `OTEL_TRACES_SAMPLER_ARG`.
pub(crate) fn parse_sampler(
    name: &Sourced<String>,
    arg: Option<&Sourced<String>>,
) -> Result<Sampler, SetupError> {
    let ratio = || -> Result<f64, SetupError> {
        match arg {
            None => Ok(1.0),
            Some(arg) => match arg.value.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(SetupError::invalid(
                    arg.from,
                    format!("{:?} is not a ratio between 0 and 1", arg.value),
                    "set a number such as `0.25` (0 samples nothing, 1 everything)",
                )),
            },
        }
    };
    let parent_based = |s: Sampler| Sampler::ParentBased(Box::new(s));
    Ok(match name.value.to_ascii_lowercase().as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        _ => {
            return Err(SetupError::invalid(
                name.from,
                format!("unknown sampler {:?}", name.value),
                "use one of always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off, parentbased_traceidratio",
            ));
        }
    })
}

/// The default sampler: parent-based, ratio 1.0 for roots.
pub(crate) fn default_sampler() -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(1.0)))
}

pub(crate) fn parse_exporter(s: &Sourced<String>) -> Result<TracesExporter, SetupError> {
    // The specification allows a list; we export to one place, so accept exactly one name.
    match s.value.to_ascii_lowercase().as_str() {
        "otlp" => Ok(TracesExporter::Otlp),
        "console" => Ok(TracesExporter::Console),
        "none" => Ok(TracesExporter::None),
        _ => Err(SetupError::invalid(
            s.from,
            format!("unknown traces exporter {:?}", s.value),
            "use one of otlp, console, none",
        )),
    }
}

pub(crate) fn parse_metrics_exporter(s: &Sourced<String>) -> Result<MetricsExporter, SetupError> {
    match s.value.to_ascii_lowercase().as_str() {
        "otlp" => Ok(MetricsExporter::Otlp),
        "none" => Ok(MetricsExporter::None),
        _ => Err(SetupError::invalid(
            s.from,
            format!("unknown metrics exporter {:?}", s.value),
            "use `otlp` or `none`",
        )),
    }
}

pub(crate) fn parse_protocol(s: &Sourced<String>) -> Result<OtlpProtocol, SetupError> {
    match s.value.to_ascii_lowercase().as_str() {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "http/json" => Err(SetupError::invalid(
            s.from,
            "OTLP http/json is not supported",
            "use `grpc` or `http/protobuf`",
        )),
        _ => Err(SetupError::invalid(
            s.from,
            format!("unknown OTLP protocol {:?}", s.value),
            "use `grpc` or `http/protobuf`",
        )),
    }
}

pub(crate) fn parse_log_format(s: &Sourced<String>) -> Result<LogFormat, SetupError> {
    match s.value.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(SetupError::invalid(
            s.from,
            format!("unknown log format {:?}", s.value),
            "use `text` or `json`",
        )),
    }
}

pub(crate) fn parse_millis(s: &Sourced<String>) -> Result<Duration, SetupError> {
    s.value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            SetupError::invalid(
                s.from,
                format!("{:?} is not a whole number of milliseconds", s.value),
                "set e.g. `10000` for ten seconds",
            )
        })
}

/// Milliseconds that must not be zero (metric export interval and timeout).
pub(crate) fn parse_positive_millis(s: &Sourced<String>) -> Result<Duration, SetupError> {
    match s.value.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(SetupError::invalid(
            s.from,
            format!(
                "{:?} is not a positive whole number of milliseconds",
                s.value
            ),
            "set e.g. `60000` for one minute",
        )),
    }
}

pub(crate) fn parse_queue_size(s: &Sourced<String>) -> Result<usize, SetupError> {
    match s.value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(SetupError::invalid(
            s.from,
            format!("{:?} is not a positive queue size", s.value),
            "set a positive number of spans such as `2048`",
        )),
    }
}

/// Parses a `key1=value1,key2=value2` list with percent-encoded values (resource attributes
/// and OTLP headers). Members without `=` or with an empty key are refused; `show_values`
/// is false for headers so that no secret ends up in an error message.
pub(crate) fn parse_key_values(
    s: &Sourced<String>,
    show_values: bool,
) -> Result<Vec<(String, String)>, SetupError> {
    let mut out = Vec::new();
    for member in s.value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some((key, value)) = member.split_once('=') else {
            let shown = if show_values {
                format!("{member:?}")
            } else {
                "a member".to_owned()
            };
            return Err(SetupError::invalid(
                s.from,
                format!("{shown} has no `=`"),
                "write `key1=value1,key2=value2` (percent-encode `,` and `=` in values)",
            ));
        };
        let key = decode(key.trim());
        if key.is_empty() {
            return Err(SetupError::invalid(
                s.from,
                "a member has an empty key",
                "write `key1=value1,key2=value2`",
            ));
        }
        out.push((key, decode(value.trim())));
    }
    Ok(out)
}

pub(crate) fn to_key_values(pairs: Vec<(String, String)>) -> Vec<KeyValue> {
    pairs
        .into_iter()
        .map(|(k, v)| KeyValue::new(k, v))
        .collect()
}

/// Checks an OTLP endpoint: an absolute `http` URL with a host (`https` is refused: no TLS
/// stack is compiled in).
pub(crate) fn validate_endpoint(s: &Sourced<String>) -> Result<String, SetupError> {
    let bad = |problem: String| {
        SetupError::invalid(
            s.from,
            problem,
            "set an absolute URL such as `http://localhost:4317` (grpc) or \
             `http://localhost:4318` (http/protobuf)",
        )
    };
    let uri: http::Uri = s
        .value
        .parse()
        .map_err(|_| bad(format!("{:?} is not a URL", s.value)))?;
    match uri.scheme_str() {
        Some("http") => {}
        // Neither the reqwest nor the tonic exporter is built with a TLS stack here, and an
        // https endpoint would fail on every export: refuse it now, with the way out.
        Some("https") => {
            return Err(SetupError::invalid(
                s.from,
                format!(
                    "{:?} needs TLS, which otel-core does not compile in",
                    s.value
                ),
                "send OTLP over plain http to a local OpenTelemetry Collector (e.g. \
                 `http://localhost:4318`) and let it forward over TLS",
            ));
        }
        _ => return Err(bad(format!("{:?} has no http:// scheme", s.value))),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad(format!("{:?} has no host", s.value)));
    }
    // `http::Uri` keeps a port it cannot read as a number (and then reports none at all).
    if let Some(authority) = uri.authority() {
        let host_port = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, hp)| hp);
        let after_host = host_port
            .rsplit_once(']')
            .map_or(host_port, |(_, rest)| rest);
        if let Some((_, port)) = after_host.rsplit_once(':')
            && port.parse::<u16>().is_err()
        {
            return Err(bad(format!(
                "{:?} has a port that is not a number",
                s.value
            )));
        }
    }
    Ok(s.value.clone())
}

/// The OTLP/HTTP URL of a signal (`traces`, `metrics`) for a base endpoint
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`).
pub(crate) fn http_signal_url(base: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", base.trim_end_matches('/'))
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(value: &str) -> Sourced<String> {
        Sourced {
            value: value.to_owned(),
            from: "TEST_VAR",
        }
    }

    #[test]
    fn samplers_by_name() {
        let table: &[(&str, Option<&str>, &str)] = &[
            ("always_on", None, "AlwaysOn"),
            ("always_off", None, "AlwaysOff"),
            ("traceidratio", Some("0.5"), "TraceIdRatioBased(0.5)"),
            ("traceidratio", None, "TraceIdRatioBased(1.0)"),
            ("parentbased_always_on", None, "ParentBased(AlwaysOn)"),
            ("parentbased_always_off", None, "ParentBased(AlwaysOff)"),
            (
                "parentbased_traceidratio",
                Some("0.1"),
                "ParentBased(TraceIdRatioBased(0.1))",
            ),
        ];
        for (name, arg, expected) in table {
            let arg = arg.map(src);
            let sampler = parse_sampler(&src(name), arg.as_ref()).unwrap();
            assert_eq!(format!("{sampler:?}"), *expected, "{name}");
        }
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = parse_sampler(&src("jaeger_remote"), None).unwrap_err();
        assert!(
            e.to_string().starts_with("TEST_VAR: unknown sampler"),
            "{e}"
        );
        for arg in ["1.5", "-0.1", "half", "NaN"] {
            let e = parse_sampler(&src("traceidratio"), Some(&src(arg))).unwrap_err();
            assert!(e.to_string().contains("not a ratio"), "{e}");
        }
        assert!(parse_exporter(&src("zipkin")).is_err());
        let e = parse_metrics_exporter(&src("prometheus")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("TEST_VAR: unknown metrics exporter \"prometheus\""),
            "{e}"
        );
        assert!(parse_positive_millis(&src("0")).is_err());
        assert!(parse_positive_millis(&src("1m")).is_err());
        assert!(parse_protocol(&src("http/json")).is_err());
        assert!(parse_protocol(&src("udp")).is_err());
        assert!(parse_bool(&src("yes")).is_err());
        assert!(parse_queue_size(&src("0")).is_err());
        assert!(parse_millis(&src("1s")).is_err());
        for bad in ["localhost:4317", "ftp://x", "http://", "not a url"] {
            assert!(validate_endpoint(&src(bad)).is_err(), "{bad}");
        }
        assert!(validate_endpoint(&src("http://collector:4318/base")).is_ok());
        let e = validate_endpoint(&src("https://collector:4318")).unwrap_err();
        assert!(e.to_string().contains("needs TLS"), "{e}");
    }

    #[test]
    fn key_values_are_percent_decoded_and_header_values_never_shown() {
        let kv = parse_key_values(&src("a=b%2Cc, team = core%20platform ,empty="), true).unwrap();
        assert_eq!(
            kv,
            vec![
                ("a".into(), "b,c".into()),
                ("team".into(), "core platform".into()),
                ("empty".into(), "".into()),
            ]
        );
        let e = parse_key_values(&src("api-key:secret123"), false).unwrap_err();
        assert!(!e.to_string().contains("secret123"), "{e}");
        assert!(parse_key_values(&src("=v"), true).is_err());
    }

    #[test]
    fn http_url_appends_the_signal_path() {
        assert_eq!(
            http_signal_url("http://c:4318", "traces"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            http_signal_url("http://c:4318/x/", "metrics"),
            "http://c:4318/x/v1/metrics"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = HashMap::from([("A", ""), ("B", "  "), ("C", "x")]);
        assert!(read(&env, "A").is_none());
        assert!(read(&env, "B").is_none());
        assert_eq!(read(&env, "C").unwrap().value, "x");
    }
}
