//! In-process OTLP trace receivers on 127.0.0.1:0: what an exporter sent over a real socket,
//! decoded from the wire.
//!
//! [`OtlpReceiver::grpc`] serves `opentelemetry.proto.collector.trace.v1.TraceService` with the
//! tonic server types of `opentelemetry-proto`; [`OtlpReceiver::http`] serves
//! `POST /v1/traces` (HTTP/protobuf) with axum and decodes `ExportTraceServiceRequest` with
//! prost. Both keep every request they received.
//!
//! ```no_run
//! # async fn run() {
//! use integration_tests::otlp_receiver::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::http().await;
//! // ... export to receiver.endpoint() with OTLP http/protobuf, then shut the exporter down
//! for span in receiver.spans() {
//!     println!("{} from {:?}", span.span.name, span.resource_attr("service.name"));
//! }
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http::{HeaderValue, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio_stream::wrappers::TcpListenerStream;

/// A running receiver and what it has received.
pub struct OtlpReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Received,
}

/// One span as received, with the resource it was sent under.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource attributes of its `ResourceSpans`.
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope name of its `ScopeSpans`.
    pub scope: String,
    /// The span as decoded.
    pub span: Span,
}

impl OtlpReceiver {
    /// An OTLP/gRPC receiver (give [`endpoint`](Self::endpoint) to a `grpc` exporter).
    pub async fn grpc() -> OtlpReceiver {
        let listener = crate::serve::loopback().await;
        let addr = listener.local_addr().expect("local address");
        let received = Received::default();
        let service = TraceServiceServer::new(GrpcTraces(received.clone()));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .expect("OTLP gRPC receiver");
        });
        OtlpReceiver { addr, received }
    }

    /// An OTLP/HTTP protobuf receiver on `POST /v1/traces` (give
    /// [`endpoint`](Self::endpoint) to an `http/protobuf` exporter: it appends the path).
    pub async fn http() -> OtlpReceiver {
        let listener = crate::serve::loopback().await;
        let addr = listener.local_addr().expect("local address");
        let received = Received::default();
        let app = Router::new()
            .route("/v1/traces", post(http_traces))
            .with_state(received.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("OTLP HTTP receiver");
        });
        OtlpReceiver { addr, received }
    }

    /// The base endpoint, `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every export request received so far.
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.received
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every span received so far, flattened, with its resource and scope.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let mut spans = Vec::new();
        for request in self.requests() {
            for resource_spans in request.resource_spans {
                let resource = resource_spans
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default();
                for scope_spans in resource_spans.scope_spans {
                    let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
                    for span in scope_spans.spans {
                        spans.push(ReceivedSpan {
                            resource: resource.clone(),
                            scope: scope.clone(),
                            span,
                        });
                    }
                }
            }
        }
        spans
    }
}

impl ReceivedSpan {
    /// Span attribute `key` as text.
    pub fn attr(&self, key: &str) -> Option<String> {
        find(&self.span.attributes, key)
    }

    /// Resource attribute `key` as text.
    pub fn resource_attr(&self, key: &str) -> Option<String> {
        find(&self.resource, key)
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id as hex (empty for a root span).
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

/// The value of `key` in `attributes` as text: strings as they are, numbers and booleans in
/// their usual spelling, arrays as `[a, b]`.
pub fn find(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    value.value.as_ref().map(text)
}

// ---- receivers ------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

impl Received {
    fn push(&self, request: ExportTraceServiceRequest) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
    }
}

struct GrpcTraces(Received);

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn http_traces(
    State(received): State<Received>,
    headers: http::HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, HeaderValue); 1], Vec<u8>) {
    let protobuf = HeaderValue::from_static("application/x-protobuf");
    if headers.get(header::CONTENT_TYPE) != Some(&protobuf) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(header::CONTENT_TYPE, protobuf)],
            Vec::new(),
        );
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            received.push(request);
            let response = ExportTraceServiceResponse {
                partial_success: None,
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, protobuf)],
                response.encode_to_vec(),
            )
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, protobuf)],
            Vec::new(),
        ),
    }
}

fn text(value: &any_value::Value) -> String {
    match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::ArrayValue(array) => {
            let items: Vec<String> = array
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().map(text))
                .collect();
            format!("[{}]", items.join(", "))
        }
        any_value::Value::KvlistValue(list) => format!("{list:?}"),
        any_value::Value::BytesValue(bytes) => hex(bytes),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
