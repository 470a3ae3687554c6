//! The response future of [`HttpServerService`](super::HttpServerService), and the traced
//! future it shares with the axum service.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use otel_core::attributes::error_type;
use pin_project::pin_project;

use super::body::{InResponseBody, ResponseBody, WrapBody};
use super::tracked::Tracked;

/// Future of a traced request: runs the handler inside the server span (sampled) or with the
/// request's context attached (unsampled), records the response head, and hands the request
/// state to the [`ResponseBody`], which ends the span when the body has been sent.
///
/// A panic in the handler is recorded (`error.type = panic`, status error) and re-raised.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    inner: Traced<F, InResponseBody>,
}

impl<F> ServerFuture<F> for ResponseFuture<F> {
    #[inline(always)]
    fn passthrough(inner: F) -> Self {
        ResponseFuture {
            inner: Traced::passthrough(inner),
        }
    }

    #[inline(always)]
    fn tracked(inner: F, tracked: Box<Tracked>) -> Self {
        ResponseFuture {
            inner: Traced::tracked(inner, tracked),
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
        self.project().inner.poll(cx)
    }
}

/// A server service's response future, as the shared request logic
/// ([`traced_call`](super::traced_call)) builds it around the inner service's future. Built in
/// place: a [`Traced`] returned by the request logic and then moved into the service's future
/// cost one more copy of the inner future per request (+64 instructions with axum).
pub(crate) trait ServerFuture<F> {
    /// The future of a request that is not traced.
    fn passthrough(inner: F) -> Self;

    /// The future of a traced request.
    fn tracked(inner: F, tracked: Box<Tracked>) -> Self;
}

/// The future behind every server service's response future: the inner service's future and,
/// for a traced request, the request's state. `W` says how the response body is handed on
/// (the one difference between the services).
#[pin_project]
pub(crate) struct Traced<F, W> {
    #[pin]
    inner: F,
    tracked: Option<Box<Tracked>>,
    wrap: PhantomData<fn() -> W>,
}

impl<F, W> Traced<F, W> {
    /// A request that is not traced: the inner response is handed on as `W` passes it through.
    #[inline(always)]
    pub(crate) fn passthrough(inner: F) -> Self {
        Traced {
            inner,
            tracked: None,
            wrap: PhantomData,
        }
    }

    /// A traced request.
    #[inline(always)]
    pub(crate) fn tracked(inner: F, tracked: Box<Tracked>) -> Self {
        Traced {
            inner,
            tracked: Some(tracked),
            wrap: PhantomData,
        }
    }
}

impl<F, W, B, E> Future for Traced<F, W>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    W: WrapBody<B>,
{
    type Output = Result<Response<W::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(tracked) = this.tracked.as_ref() else {
            return this.inner.poll(cx).map(|result| result.map(W::passthrough));
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
                    return Poll::Ready(Ok(W::passthrough(response)));
                }
                Poll::Ready(Ok(W::tracked(response, tracked)))
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
