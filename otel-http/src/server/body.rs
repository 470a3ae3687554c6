//! The response body wrapper that ends the server span when the body has been sent, and
//! [`WrapBody`], how a server service hands the inner response on.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use http_body::{Body, Frame, SizeHint};
use otel_core::attributes::error_type;
use pin_project::{pin_project, pinned_drop};

use super::tracked::Tracked;

/// Response body of a traced request. When the last frame has been produced the server span
/// ends and `http.server.request.duration` is recorded.
/// Dropped before that (client gone), it records `http.response.body.incomplete = true`.
#[pin_project(PinnedDrop)]
pub struct ResponseBody<B> {
    #[pin]
    inner: B,
    tracked: Option<Box<Tracked>>,
}

impl<B> ResponseBody<B> {
    pub(crate) fn passthrough(inner: B) -> Self {
        ResponseBody {
            inner,
            tracked: None,
        }
    }

    pub(crate) fn tracked(inner: B, tracked: Box<Tracked>) -> Self {
        ResponseBody {
            inner,
            tracked: Some(tracked),
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        // The body is polled outside the span (as tower-http does): entering it on every frame
        // would cost a subscriber round trip per chunk. The span's end time is stamped when the
        // request finishes.
        let polled = this.inner.as_mut().poll_frame(cx);
        if this.tracked.is_none() {
            return polled;
        }
        match &polled {
            Poll::Ready(None) => {
                if let Some(tracked) = this.tracked.take() {
                    tracked.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut tracked) = this.tracked.take() {
                    tracked.on_error(error_type::OTHER);
                    tracked.finish(false);
                }
            }
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                if let Some(tracked) = this.tracked.take() {
                    tracked.finish(true);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[pinned_drop]
impl<B> PinnedDrop for ResponseBody<B> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if let Some(tracked) = this.tracked.take() {
            tracked.finish(false);
        }
    }
}

/// How a server service hands the inner service's response on: the only thing in which
/// [`HttpServerService`](super::HttpServerService) and the axum one differ. The request logic
/// ([`super::traced_call`]) and the response future ([`Traced`](super::future::Traced)) are
/// shared; the future is generic over it.
pub(crate) trait WrapBody<B> {
    /// The body of the response the service answers with.
    type Body;

    /// A response that is not traced (SDK disabled, filtered path), or a traced one whose
    /// request already ended (nothing left to send).
    fn passthrough(response: Response<B>) -> Response<Self::Body>;

    /// A traced response: its body ends the request when it has been sent.
    fn tracked(response: Response<B>, tracked: Box<Tracked>) -> Response<Self::Body>;
}

/// Any inner body, wrapped in [`ResponseBody`] on every path: the response type of
/// [`HttpServerService`](super::HttpServerService) is `Response<ResponseBody<B>>`.
pub(crate) enum InResponseBody {}

impl<B> WrapBody<B> for InResponseBody {
    type Body = ResponseBody<B>;

    fn passthrough(response: Response<B>) -> Response<ResponseBody<B>> {
        response.map(ResponseBody::passthrough)
    }

    fn tracked(response: Response<B>, tracked: Box<Tracked>) -> Response<ResponseBody<B>> {
        response.map(|body| ResponseBody::tracked(body, tracked))
    }
}
