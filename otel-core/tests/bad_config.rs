//! Bad configuration is refused at setup with an error that names the setting and says what
//! to change: the exact messages a user reads (unknown propagator, invalid sampler argument,
//! malformed endpoint, zero thresholds, bad request-id settings, bad metrics settings).
//!
//! The tests at the end pin values that were once accepted silently (a clamped ratio, a zero
//! timeout or queue from code, a port that is not a number).

use std::collections::HashMap;
use std::time::Duration;

use otel_core::Telemetry;
use otel_core::repeated_shape::DetectorConfig;
use otel_core::request_id::RequestIdConfig;

const PROPAGATOR_FIX: &str = "accepted names are tracecontext, baggage, b3, b3multi, jaeger, \
     xray, none (comma-separated); use a comma-separated list of tracecontext, baggage, b3, \
     b3multi, jaeger, xray, none";
const RATIO_FIX: &str =
    "is not a ratio between 0 and 1; set a number such as `0.25` (0 samples nothing, 1 everything)";
const URL_FIX: &str = "set an absolute URL such as `http://localhost:4317` (grpc) or \
     `http://localhost:4318` (http/protobuf)";

fn env_error(vars: &[(&str, &str)]) -> otel_core::SetupError {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Telemetry::builder()
        .env(env)
        .resolve()
        .expect_err("must be refused")
}

fn code() -> Telemetry {
    Telemetry::builder().env(HashMap::<String, String>::new())
}

#[test]
fn unknown_propagator_is_refused_from_env_and_from_code() {
    let err = env_error(&[("OTEL_PROPAGATORS", "tracecontext,zipkin")]);
    assert_eq!(err.setting(), Some("OTEL_PROPAGATORS"));
    assert_eq!(
        err.to_string(),
        format!(
            "OTEL_PROPAGATORS: unknown propagator \"zipkin\" in \"tracecontext,zipkin\"; {PROPAGATOR_FIX}"
        )
    );
    let err = code().propagators("w3c").resolve().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Telemetry::propagators: unknown propagator \"w3c\" in \"w3c\"; {PROPAGATOR_FIX}")
    );
}

#[test]
fn invalid_sampler_arguments_are_refused() {
    for (sampler, arg) in [
        ("traceidratio", "-1"),
        ("traceidratio", "1.5"),
        ("parentbased_traceidratio", "NaN"),
        ("parentbased_traceidratio", "inf"),
        ("traceidratio", "half"),
    ] {
        let err = env_error(&[
            ("OTEL_TRACES_SAMPLER", sampler),
            ("OTEL_TRACES_SAMPLER_ARG", arg),
        ]);
        assert_eq!(err.setting(), Some("OTEL_TRACES_SAMPLER_ARG"), "{arg}");
        assert_eq!(
            err.to_string(),
            format!("OTEL_TRACES_SAMPLER_ARG: \"{arg}\" {RATIO_FIX}")
        );
    }
}

#[test]
fn malformed_endpoints_are_refused() {
    for (value, problem) in [
        ("collector:4317", "has no http:// scheme"),
        ("http://", "is not a URL"),
        ("http://[::1", "is not a URL"),
    ] {
        let err = env_error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", value)]);
        assert_eq!(
            err.to_string(),
            format!("OTEL_EXPORTER_OTLP_ENDPOINT: \"{value}\" {problem}; {URL_FIX}")
        );
    }
    let err = code().otlp_endpoint("not a url").resolve().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Telemetry::otlp_endpoint: \"not a url\" is not a URL; {URL_FIX}")
    );
}

#[test]
fn bad_metrics_settings_are_refused() {
    // Refused whether or not metrics would be exported: a typo never waits for the day it
    // matters.
    for otlp in [false, true] {
        let endpoint = if otlp { "http://collector:4318" } else { "" };
        let with =
            |var, value| env_error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), (var, value)]);
        let err = with("OTEL_METRICS_EXPORTER", "prometheus");
        assert_eq!(err.setting(), Some("OTEL_METRICS_EXPORTER"));
        assert_eq!(
            err.to_string(),
            "OTEL_METRICS_EXPORTER: unknown metrics exporter \"prometheus\"; use `otlp` or `none`"
        );
        for value in ["1m", "0", "-5", "60000.5"] {
            for var in ["OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"] {
                let err = with(var, value);
                assert_eq!(err.setting(), Some(var));
                assert_eq!(
                    err.to_string(),
                    format!(
                        "{var}: \"{value}\" is not a positive whole number of milliseconds; \
                         set e.g. `60000` for one minute"
                    )
                );
            }
        }
    }
    let err = code()
        .metric_export_interval(Duration::ZERO)
        .resolve()
        .unwrap_err();
    assert_eq!(err.setting(), Some("Telemetry::metric_export_interval"));
    assert!(err.to_string().contains("zero interval"), "{err}");
}

#[test]
fn zero_thresholds_and_caps_of_the_detector_are_refused() {
    let threshold = |name: &str, value: u64| {
        format!(
            "repeated_shape: {name} must be at least 2 (got {value}); use Mode::Off to disable detection"
        )
    };
    let cap = |name: &str| {
        format!(
            "repeated_shape: {name} must be at least 1 (got 0); use Mode::Off to disable detection"
        )
    };
    let cases = [
        (
            DetectorConfig::builder().n_plus_one_threshold(0),
            threshold("n_plus_one_threshold", 0),
        ),
        (
            DetectorConfig::builder().n_plus_one_threshold(1),
            threshold("n_plus_one_threshold", 1),
        ),
        (
            DetectorConfig::builder().duplicate_threshold(0),
            threshold("duplicate_threshold", 0),
        ),
        (
            DetectorConfig::builder().unbatched_write_threshold(0),
            threshold("unbatched_write_threshold", 0),
        ),
        (
            DetectorConfig::builder().max_shapes_per_scope(0),
            cap("max_shapes_per_scope"),
        ),
        (DetectorConfig::builder().max_scopes(0), cap("max_scopes")),
        (
            DetectorConfig::builder().max_shape_len(0),
            cap("max_shape_len"),
        ),
    ];
    for (builder, message) in cases {
        assert_eq!(builder.build().err().map(|e| e.to_string()), Some(message));
    }
    assert!(
        DetectorConfig::builder()
            .n_plus_one_threshold(2)
            .build()
            .is_ok()
    );
}

#[test]
fn bad_request_id_settings_are_refused() {
    assert_eq!(
        RequestIdConfig::default()
            .headers(["bad header"])
            .unwrap_err()
            .to_string(),
        "request id header name \"bad header\" is not a valid header name; use e.g. \"x-request-id\""
    );
    assert!(
        RequestIdConfig::default()
            .headers(Vec::<String>::new())
            .is_err()
    );
    for prefix in ["", "a.b", "has space", &"p".repeat(33)] {
        assert_eq!(
            RequestIdConfig::default()
                .forward_prefix(prefix)
                .unwrap_err()
                .to_string(),
            format!(
                "request id prefix {prefix:?} is invalid: use 1 to 32 visible ASCII characters \
                 without quotes, spaces or '.'"
            )
        );
    }
}

// ---- accepted today, should be refused (reported) ------------------------------------------

#[test]

fn sampling_ratio_out_of_range_should_be_refused() {
    for ratio in [f64::NAN, -0.5, 7.0] {
        let err = code().sampling_ratio(ratio).resolve().unwrap_err();
        assert_eq!(err.setting(), Some("Telemetry::sampling_ratio"));
    }
}

#[test]

fn endpoint_with_a_non_numeric_port_should_be_refused() {
    let err = env_error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:port")]);
    assert_eq!(err.setting(), Some("OTEL_EXPORTER_OTLP_ENDPOINT"));
}

#[test]

fn zero_timeout_and_queue_from_code_should_be_refused() {
    let err = code()
        .otlp_endpoint("http://c:4318")
        .otlp_timeout(Duration::ZERO)
        .resolve()
        .unwrap_err();
    assert_eq!(err.setting(), Some("Telemetry::otlp_timeout"));
    // OTEL_BSP_MAX_QUEUE_SIZE=0 is refused; the builder method silently makes it 1.
    let err = code()
        .otlp_endpoint("http://c:4318")
        .max_queue_size(0)
        .resolve()
        .unwrap_err();
    assert_eq!(err.setting(), Some("Telemetry::max_queue_size"));
}
