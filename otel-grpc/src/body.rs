//! The response body wrapper: watches the stream for the trailers that carry `grpc-status`,
//! keeps the call's span current while the body (and, on a tonic server, the handler's
//! response stream) is polled, and ends the call when the stream ends or is dropped.
//!
//! ```
//! # use otel_grpc::{GrpcServerLayer, ResponseBody};
//! // The layers' services answer `http::Response<ResponseBody<B>>`, where `B` is the inner
//! // service's body; a tonic server or client never names the type.
//! fn assert_body<B: http_body::Body>() {}
//! assert_body::<ResponseBody<tonic::body::Body>>();
//! ```

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project::{pin_project, pinned_drop};

use crate::call::{BoxError, Call, Outcome, classify};
use crate::status::code_from_headers;

/// Response body of [`GrpcServer`](crate::GrpcServer) and [`GrpcClient`](crate::GrpcClient).
#[pin_project(PinnedDrop)]
pub struct ResponseBody<B> {
    #[pin]
    inner: B,
    call: Option<Call>,
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, call: Option<Call>) -> Self {
        ResponseBody { inner, call }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = {
            let _entered = this.call.as_ref().map(Call::enter);
            ready!(this.inner.poll_frame(cx))
        };
        match polled {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    let code = code_from_headers(trailers).unwrap_or(tonic::Code::Unknown);
                    call.finish(Outcome::Status(code));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => {
                let err: BoxError = err.into();
                if let Some(call) = this.call.take() {
                    call.finish(classify(err.as_ref()));
                }
                Poll::Ready(Some(Err(err)))
            }
            None => {
                if let Some(call) = this.call.take() {
                    // The stream ended without trailers: gRPC says the status is missing,
                    // which the client library reports as an unknown error.
                    call.finish(Outcome::Status(tonic::Code::Unknown));
                }
                Poll::Ready(None)
            }
        }
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
        if let Some(call) = self.project().call.take() {
            call.finish(Outcome::Dropped);
        }
    }
}
