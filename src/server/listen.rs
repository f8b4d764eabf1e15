//! The HTTP listeners, for a network nobody vouches for: any pod of the cluster reaches them,
//! before any authentication. `axum::serve` sets no limit at all (a slow client keeps its
//! connection and its buffers as long as it likes), so connections are served here with
//! hyper's own settings and tower's layers:
//! - at most [`MAX_CONNECTIONS`] connections per listener; one beyond is closed at once, so a
//!   flood costs a socket, not memory;
//! - the request head within [`HEADER_TIMEOUT`] (hyper's `header_read_timeout`, which also
//!   ends a keep-alive connection idle for that long), at most [`MAX_HEAD_BYTES`] of it (431
//!   beyond) in at most [`MAX_HEADERS`] headers;
//! - the whole request answered within [`REQUEST_TIMEOUT`] (408), body reads included;
//! - per route, at most so many requests in flight (`limited`), 503 beyond;
//! - HTTP/1.1 only: the webhook callers and Prometheus speak it.

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Connections open at once, per listener.
pub const MAX_CONNECTIONS: usize = 512;
/// Time to send the request head, and the longest a keep-alive connection stays idle.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The request head's size: hyper's read buffer (the smallest it allows is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;
/// Time from the request's head to its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `router` with at most `in_flight` of its requests at once: those beyond are answered 503
/// at once rather than queued.
pub fn limited<S: Clone + Send + Sync + 'static>(router: Router<S>, in_flight: usize) -> Router<S> {
    use tower::ServiceBuilder;
    router.route_layer(
        ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(
                |_: tower::BoxError| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"error": "too many requests at once; try again shortly"})),
                    )
                },
            ))
            .load_shed()
            .concurrency_limit(in_flight),
    )
}

/// Serves `router` on `listener` until `shutdown`; then stops accepting and gives the open
/// connections `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let router = router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("connections still open after the grace period; closed");
    }
}
