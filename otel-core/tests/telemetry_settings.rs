//! Settings from the environment (an injected map, never the process environment) and from
//! code: each variable, code wins, bad values refused naming the setting, OTLP exporters
//! built for both protocols, shutdown bounded by its timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry::{Key, KeyValue, Value};
use otel_core::Telemetry;
use otel_core::telemetry::{ExporterSettings, LogFormat, OtlpProtocol, Settings, TracesExporter};

fn with_env(vars: &[(&'static str, &'static str)]) -> Telemetry {
    Telemetry::builder().env(vars.iter().copied().collect::<HashMap<_, _>>())
}

fn resolve(vars: &[(&'static str, &'static str)]) -> Settings {
    with_env(vars).resolve().unwrap()
}

fn resource_attr(settings: &Settings, key: &'static str) -> Option<Value> {
    settings.resource.get(&Key::from_static_str(key))
}

fn otlp(settings: &Settings) -> otel_core::telemetry::OtlpSettings {
    match &settings.exporter {
        ExporterSettings::Otlp(o) => o.clone(),
        other => panic!("expected OTLP, got {other:?}"),
    }
}

#[test]
fn defaults() {
    let s = resolve(&[]);
    assert!(!s.disabled);
    assert!(
        s.service_name.starts_with("unknown_service"),
        "{}",
        s.service_name
    );
    assert_eq!(
        format!("{:?}", s.sampler),
        "ParentBased(TraceIdRatioBased(1.0))"
    );
    assert_eq!(s.propagators, "tracecontext,baggage");
    assert_eq!(s.log_filter, "info");
    assert_eq!(s.log_format, LogFormat::Text);
    // The embedded default: the terminal tree in debug builds, nothing in release builds.
    let expected = if cfg!(debug_assertions) {
        ExporterSettings::Console
    } else {
        ExporterSettings::None
    };
    assert_eq!(s.exporter, expected);
    assert!(resource_attr(&s, "telemetry.sdk.name").is_some());
}

#[test]
fn each_variable_is_read() {
    let s = resolve(&[
        ("OTEL_SERVICE_NAME", "billing"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=pay%20ments,region=eu-west-1",
        ),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("OTEL_PROPAGATORS", "tracecontext"),
        ("RUST_LOG", "debug,hyper=warn"),
        ("OTEL_LOG_FORMAT", "json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=s3cr%3Dt,x-tenant=a",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
    ]);
    assert_eq!(s.service_name, "billing");
    assert_eq!(resource_attr(&s, "service.name"), Some("billing".into()));
    assert_eq!(resource_attr(&s, "team"), Some("pay ments".into()));
    assert_eq!(resource_attr(&s, "region"), Some("eu-west-1".into()));
    assert_eq!(
        format!("{:?}", s.sampler),
        "ParentBased(TraceIdRatioBased(0.25))"
    );
    assert_eq!(s.propagators, "tracecontext");
    assert_eq!(s.log_filter, "debug,hyper=warn");
    assert_eq!(s.log_format, LogFormat::Json);
    let o = otlp(&s);
    assert_eq!(o.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(o.header_names(), ["x-api-key", "x-tenant"]);
    assert_eq!(o.timeout, Duration::from_millis(2500));
    assert_eq!(o.max_queue_size, 100);
    // Header values are secrets: never in Debug output.
    assert!(!format!("{s:?}").contains("s3cr"), "{s:?}");
}

#[test]
fn otlp_endpoint_and_protocol_variants() {
    let o = otlp(&resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]));
    assert_eq!(
        (o.endpoint.as_str(), o.protocol),
        ("http://collector:4317", OtlpProtocol::Grpc)
    );
    // The traces endpoint is used as is, and wins over the base endpoint.
    let o = otlp(&resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:4318/custom",
        ),
    ]));
    assert_eq!(o.endpoint, "http://traces:4318/custom");
    // The traces protocol wins over the general one.
    let o = otlp(&resolve(&[
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
    ]));
    assert_eq!(
        (o.endpoint.as_str(), o.protocol),
        ("http://localhost:4317", OtlpProtocol::Grpc)
    );
    assert_eq!(
        resolve(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")
        ])
        .exporter,
        ExporterSettings::None
    );
    assert_eq!(
        resolve(&[("OTEL_TRACES_EXPORTER", "console")]).exporter,
        ExporterSettings::Console
    );
}

#[test]
fn samplers_from_the_environment() {
    let table = [
        ("always_on", None, "AlwaysOn"),
        ("always_off", None, "AlwaysOff"),
        ("traceidratio", Some("0.5"), "TraceIdRatioBased(0.5)"),
        ("parentbased_always_on", None, "ParentBased(AlwaysOn)"),
        ("parentbased_always_off", None, "ParentBased(AlwaysOff)"),
        (
            "parentbased_traceidratio",
            None,
            "ParentBased(TraceIdRatioBased(1.0))",
        ),
    ];
    for (name, arg, expected) in table {
        let mut vars = vec![("OTEL_TRACES_SAMPLER", name)];
        if let Some(arg) = arg {
            vars.push(("OTEL_TRACES_SAMPLER_ARG", arg));
        }
        assert_eq!(format!("{:?}", resolve(&vars).sampler), expected, "{name}");
    }
}

#[test]
fn code_wins_over_environment() {
    let s = with_env(&[
        ("OTEL_SERVICE_NAME", "from-env"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=env,deployment.environment.name=dev",
        ),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_TRACES_EXPORTER", "console"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://env-traces:4318/v1/traces",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=env"),
        ("OTEL_PROPAGATORS", "baggage"),
        ("OTEL_SDK_DISABLED", "true"),
        ("RUST_LOG", "warn"),
        ("OTEL_LOG_FORMAT", "json"),
    ])
    .service_name("from-code")
    .service_version("1.2.3")
    .environment("production")
    .resource_attribute(KeyValue::new("team", "code"))
    .sampling_ratio(0.5)
    .traces_exporter(TracesExporter::Otlp)
    .otlp_endpoint("http://code:4317")
    .otlp_protocol(OtlpProtocol::Grpc)
    .otlp_header("x-tenant", "code")
    .propagators("tracecontext")
    .disabled(false)
    .log_filter("info,otel_sql=debug")
    .log_format(LogFormat::Text)
    .resolve()
    .unwrap();
    assert!(!s.disabled);
    assert_eq!(s.service_name, "from-code");
    assert_eq!(resource_attr(&s, "service.version"), Some("1.2.3".into()));
    assert_eq!(
        resource_attr(&s, "deployment.environment.name"),
        Some("production".into())
    );
    assert_eq!(resource_attr(&s, "team"), Some("code".into()));
    assert_eq!(
        format!("{:?}", s.sampler),
        "ParentBased(TraceIdRatioBased(0.5))"
    );
    let o = otlp(&s);
    assert_eq!(
        (o.endpoint.as_str(), o.protocol),
        ("http://code:4317", OtlpProtocol::Grpc)
    );
    assert_eq!(o.header_names(), ["x-tenant"]);
    assert_eq!(s.propagators, "tracecontext");
    assert_eq!(s.log_filter, "info,otel_sql=debug");
    assert_eq!(s.log_format, LogFormat::Text);
}

#[test]
fn bad_values_are_refused_naming_the_setting_and_the_fix() {
    // (environment, setting named in the error, part of the fix it suggests)
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );
    let table: &[Case] = &[
        (
            &[("OTEL_TRACES_SAMPLER", "jaeger_remote")],
            "OTEL_TRACES_SAMPLER",
            "use one of",
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ],
            "OTEL_TRACES_SAMPLER_ARG",
            "0.25",
        ),
        (
            &[("OTEL_TRACES_EXPORTER", "zipkin")],
            "OTEL_TRACES_EXPORTER",
            "otlp, console, none",
        ),
        (
            &[
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/protobuf",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "absolute URL",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "local OpenTelemetry Collector",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://c")],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "absolute URL",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key"),
            ],
            "OTEL_EXPORTER_OTLP_HEADERS",
            "key1=value1",
        ),
        (
            &[("OTEL_PROPAGATORS", "tracecontext,zipkin")],
            "OTEL_PROPAGATORS",
            "b3multi",
        ),
        (
            &[("OTEL_SDK_DISABLED", "yes")],
            "OTEL_SDK_DISABLED",
            "`true` or `false`",
        ),
        (
            &[("RUST_LOG", "info,otel_sql=loud")],
            "RUST_LOG",
            "EnvFilter syntax",
        ),
        (
            &[("OTEL_LOG_FORMAT", "xml")],
            "OTEL_LOG_FORMAT",
            "`text` or `json`",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ],
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "positive",
        ),
    ];
    for (vars, setting, fix) in table {
        let err = with_env(vars).resolve().unwrap_err();
        assert_eq!(err.setting(), Some(*setting), "{vars:?}: {err}");
        let message = err.to_string();
        assert!(message.starts_with(setting), "{message}");
        assert!(message.contains(fix), "{vars:?}: {message}");
        // install() refuses the same way, before installing anything.
        let err = with_env(vars).install().unwrap_err();
        assert_eq!(err.setting(), Some(*setting));
    }
    // Code-given values name the builder method.
    let err = Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .otlp_endpoint("not a url")
        .resolve()
        .unwrap_err();
    assert_eq!(err.setting(), Some("Telemetry::otlp_endpoint"));
    let err = Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .propagators("w3c")
        .resolve()
        .unwrap_err();
    assert_eq!(err.setting(), Some("Telemetry::propagators"));
    let err = Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .otlp_endpoint("http://c:4318")
        .otlp_header("x-api-key", "line\nbreak-secret")
        .resolve()
        .unwrap_err();
    assert_eq!(err.setting(), Some("Telemetry::otlp_header"));
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn a_filter_that_drops_our_spans_is_warned_about_naming_the_directive() {
    let parts = with_env(&[
        ("RUST_LOG", "warn,otel_sql=info"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ])
    .build()
    .unwrap();
    let warning = parts.filter_warning().unwrap();
    assert!(
        warning.contains("otel_http, otel_grpc, otel_resilience"),
        "{warning}"
    );
    assert!(
        warning.contains("add `otel_http=info,otel_grpc=info,otel_resilience=info`"),
        "{warning}"
    );
    let parts = with_env(&[("OTEL_TRACES_EXPORTER", "none")])
        .build()
        .unwrap();
    assert!(parts.filter_warning().is_none());
}

#[test]
fn grpc_outside_a_tokio_runtime_is_refused_not_a_panic() {
    let err = with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ])
    .build()
    .unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

/// A TCP listener that never answers: connections are accepted by the kernel (backlog) but
/// no byte ever comes back, like a collector that hangs.
fn dead_endpoint() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn export_one_span_then_shutdown(parts: otel_core::telemetry::TelemetryParts) -> Duration {
    let provider = parts.tracer_provider().unwrap().clone();
    let (guard, _default) = parts.set_default();
    tracing::info_span!("GET /slow").in_scope(|| {});
    // Ask for an export now, so that shutdown meets an export in flight.
    let _ = std::thread::spawn(move || provider.force_flush());
    let started = Instant::now();
    let _ = guard.shutdown(Duration::from_millis(300));
    started.elapsed()
}

#[tokio::test]
async fn grpc_exporter_is_built_and_shutdown_with_a_dead_endpoint_is_bounded() {
    let (_listener, url) = dead_endpoint();
    let parts = Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .otlp_endpoint(url.clone())
        .otlp_protocol(OtlpProtocol::Grpc)
        .log_writer(std::io::sink)
        .build()
        .unwrap();
    assert_eq!(otlp(parts.settings()).endpoint, url);
    let elapsed = export_one_span_then_shutdown(parts);
    // The export timeout is 10 s; shutdown gave up after its own 300 ms.
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn http_exporter_is_built_and_shutdown_with_a_dead_endpoint_is_bounded() {
    let (_listener, url) = dead_endpoint();
    let parts = with_env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")])
        .otlp_endpoint(url.clone())
        .log_writer(std::io::sink)
        .build()
        .unwrap();
    assert_eq!(otlp(parts.settings()).endpoint, format!("{url}/v1/traces"));
    let elapsed = export_one_span_then_shutdown(parts);
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

/// An exporter that never finishes an export until the test ends, like a hung collector.
#[derive(Debug)]
struct Hung(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl opentelemetry_sdk::trace::SpanExporter for Hung {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let _ = self.0.lock().unwrap().recv();
        Ok(())
    }
}

#[test]
fn a_full_export_queue_drops_and_counts_on_the_guard() {
    let (release, rx) = std::sync::mpsc::channel();
    let parts = Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .max_queue_size(8)
        .span_exporter(Hung(std::sync::Mutex::new(rx)))
        .log_writer(std::io::sink)
        .build()
        .unwrap();
    assert_eq!(parts.settings().exporter, ExporterSettings::Custom);
    let (guard, _default) = parts.set_default();
    for _ in 0..100 {
        tracing::info_span!("GET /busy").in_scope(|| {});
    }
    // 8 may wait and one batch of at most 8 may be stuck in the exporter.
    assert!(guard.dropped_spans() >= 84, "{}", guard.dropped_spans());
    drop(release);
    assert!(guard.shutdown(Duration::from_secs(5)).is_ok());
}

proptest::proptest! {
    /// Any value of any variable is either accepted or refused with a message naming a
    /// setting; nothing panics. (Header values never in messages: see the table test.)
    #[test]
    fn arbitrary_environment_values_never_panic(
        var in proptest::sample::select(vec![
            "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED",
            "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_TRACES_EXPORTER",
            "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_PROPAGATORS",
            "RUST_LOG", "OTEL_LOG_FORMAT",
        ]),
        value in "\\PC{0,40}",
    ) {
        // The arbitrary value comes last, so it wins over the defaults that make the OTLP
        // and sampler-argument settings be read at all.
        let env = HashMap::from([
            ("OTEL_TRACES_EXPORTER".to_owned(), "otlp".to_owned()),
            ("OTEL_TRACES_SAMPLER".to_owned(), "traceidratio".to_owned()),
            (var.to_owned(), value),
        ]);
        if let Err(e) = Telemetry::builder().env(env).resolve() {
            proptest::prop_assert!(e.setting().is_some(), "{}", e);
        }
    }
}
