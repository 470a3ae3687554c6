//! The response future of [`HttpServerService`](super::HttpServerService).

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use otel_core::attributes::error_type;
use pin_project::pin_project;

use super::body::ResponseBody;
use super::tracked::Tracked;

/// Future of a traced request: runs the handler inside the server span (sampled) or with the
/// request's context attached (unsampled), records the response head, and hands the request
/// state to the [`ResponseBody`], which ends the span when the body has been sent.
///
/// A panic in the handler is recorded (`error.type = panic`, status error) and re-raised.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    tracked: Option<Box<Tracked>>,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn passthrough(inner: F) -> Self {
        ResponseFuture {
            inner,
            tracked: None,
        }
    }

    pub(crate) fn tracked(inner: F, tracked: Box<Tracked>) -> Self {
        ResponseFuture {
            inner,
            tracked: Some(tracked),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(tracked) = this.tracked.as_ref() else {
            return this
                .inner
                .poll(cx)
                .map(|result| result.map(|response| response.map(ResponseBody::passthrough)));
        };
        let inner = this.inner;
        let polled = {
            let _entered = tracked.span.as_ref().map(tracing::Span::enter);
            let _attached = tracked.cx.as_ref().map(|c| c.clone().attach());
            panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
        };
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(mut response))) => {
                let Some(mut tracked) = this.tracked.take() else {
                    unreachable!("checked above")
                };
                tracked.on_response(&mut response);
                if response.body().is_end_stream() {
                    // Nothing left to send (empty body): the request is complete now, and hyper
                    // may never poll the body.
                    tracked.finish(true);
                    return Poll::Ready(Ok(response.map(ResponseBody::passthrough)));
                }
                Poll::Ready(Ok(response.map(|body| ResponseBody::tracked(body, tracked))))
            }
            Ok(Poll::Ready(Err(error))) => {
                if let Some(mut tracked) = this.tracked.take() {
                    tracked.on_error(error_type::OTHER);
                    tracked.finish(true);
                }
                Poll::Ready(Err(error))
            }
            Err(payload) => {
                if let Some(mut tracked) = this.tracked.take() {
                    tracked.on_panic();
                    tracked.finish(true);
                }
                panic::resume_unwind(payload)
            }
        }
    }
}
