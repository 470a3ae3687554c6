//! Real servers on 127.0.0.1, port chosen by the OS, spawned on the current runtime.
//!
//! ```no_run
//! # async fn run() {
//! let addr = integration_tests::serve::http(axum::Router::new()).await;
//! assert!(addr.ip().is_loopback());
//! # }
//! ```

use std::net::SocketAddr;

use axum::Router;

/// Serves `app` on 127.0.0.1:0 (with the peer address as `ConnectInfo`, so server spans get
/// `client.address`) and returns the address it listens on.
pub async fn http(app: Router) -> SocketAddr {
    let listener = loopback().await;
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("HTTP server");
    });
    addr
}

/// A listener on 127.0.0.1:0.
pub async fn loopback() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}
