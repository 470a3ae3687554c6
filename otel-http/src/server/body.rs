//! The response body wrapper that ends the server span when the body has been sent.

use std::pin::Pin;
use std::task::{Context, Poll};

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
