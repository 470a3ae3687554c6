//! A traced axum server: `cargo run -p examples --bin axum_server`
//!
//! It serves one request to itself and exits; the trace tree prints in the terminal (debug
//! builds), or goes to your collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use otel_http::AxumServerLayer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = otel_core::Telemetry::builder()
        .service_name("users")
        .install()?; // flushes when dropped, at the end of main

    let app = Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u64>| async move {
                // A log line with trace_id, span_id and request_id.
                tracing::info!(id, "loading user");
                format!("user {id}")
            }),
        )
        // After routing: the span is named `GET /users/{id}`.
        .layer(AxumServerLayer::new());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .into_future(),
    );

    // One request to ourselves (a real service would only await the server).
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/users/42"))
        .header("x-request-id", "example-1")
        .send()
        .await?;
    println!("{} {}", response.status(), response.text().await?);
    let _ = stop.send(());
    server.await??;
    Ok(())
}
