//! Helpers shared by the integration tests: real servers on 127.0.0.1:0, metric lookup.
#![allow(dead_code)]

use std::net::SocketAddr;

use axum::Router;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, MetricData, ResourceMetrics, SumDataPoint,
};

/// Serves `app` on 127.0.0.1 (port chosen by the OS) with the peer address available.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// The data points of the f64 histogram `name`.
pub fn histogram_points(metrics: &[ResourceMetrics], name: &str) -> Vec<HistogramDataPoint<f64>> {
    let mut out = Vec::new();
    for rm in metrics {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                if m.name() == name
                    && let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data()
                {
                    out.extend(h.data_points().cloned());
                }
            }
        }
    }
    out
}

/// The data points of the i64 sum `name`.
pub fn sum_points(metrics: &[ResourceMetrics], name: &str) -> Vec<SumDataPoint<i64>> {
    let mut out = Vec::new();
    for rm in metrics {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                if m.name() == name
                    && let AggregatedMetrics::I64(MetricData::Sum(s)) = m.data()
                {
                    out.extend(s.data_points().cloned());
                }
            }
        }
    }
    out
}

/// Attribute `key` of a data point, as text.
pub fn point_attr<'a>(mut attrs: impl Iterator<Item = &'a KeyValue>, key: &str) -> Option<String> {
    attrs
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}
