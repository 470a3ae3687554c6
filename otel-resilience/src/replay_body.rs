//! Request bodies the retry layer can send again: a body is buffered (up to the policy's
//! limit, 64 KiB by default) before the first attempt and rebuilt for each retry. A body
//! larger than the limit, or one that streams past it, is sent once and never retried.
//!
//! Implement [`ReplayBody`] for your own body type if it is not covered (`Full<Bytes>`,
//! `Empty<Bytes>`, `BoxBody`, `UnsyncBoxBody`, `String`, and `tonic::body::Body` with the
//! `tonic` feature). Request trailers are not replayed.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use otel_resilience::replay_body::ReplayBody;
//!
//! let body = <Full<Bytes> as ReplayBody>::from_bytes(Bytes::from_static(b"{}"));
//! # let _ = body;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Empty, Full};
use pin_project::pin_project;

/// A body that can be rebuilt from buffered bytes.
pub trait ReplayBody: Body<Data = Bytes> + Sized + Unpin {
    /// A body holding exactly `bytes`.
    fn from_bytes(bytes: Bytes) -> Self;
    /// A body yielding `prefix` (already read from `rest`) then whatever `rest` still holds.
    fn from_prefix(prefix: Bytes, rest: Self) -> Self;
}

impl ReplayBody for Full<Bytes> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
    }
    fn from_prefix(prefix: Bytes, _rest: Self) -> Self {
        // A `Full` yields its single frame at once: after one read nothing is left.
        Full::new(prefix)
    }
}

impl ReplayBody for Empty<Bytes> {
    fn from_bytes(_bytes: Bytes) -> Self {
        Empty::new()
    }
    fn from_prefix(_prefix: Bytes, rest: Self) -> Self {
        rest
    }
}

impl ReplayBody for String {
    fn from_bytes(bytes: Bytes) -> Self {
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn from_prefix(prefix: Bytes, _rest: Self) -> Self {
        Self::from_bytes(prefix)
    }
}

impl<E: 'static> ReplayBody for BoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes).map_err(|never| match never {}).boxed()
    }
    fn from_prefix(prefix: Bytes, rest: Self) -> Self {
        BoxBody::new(PrefixedBody::new(prefix, rest))
    }
}

impl<E: 'static> ReplayBody for UnsyncBoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    }
    fn from_prefix(prefix: Bytes, rest: Self) -> Self {
        UnsyncBoxBody::new(PrefixedBody::new(prefix, rest))
    }
}

#[cfg(feature = "tonic")]
impl ReplayBody for tonic::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        tonic::body::Body::new(Full::new(bytes))
    }
    fn from_prefix(prefix: Bytes, rest: Self) -> Self {
        tonic::body::Body::new(PrefixedBody::new(prefix, rest))
    }
}

/// A body that yields a buffered prefix, then the rest of another body.
#[pin_project]
#[derive(Debug)]
pub struct PrefixedBody<B> {
    prefix: Option<Bytes>,
    #[pin]
    rest: B,
}

impl<B> PrefixedBody<B> {
    /// `prefix` then `rest`.
    pub fn new(prefix: Bytes, rest: B) -> Self {
        PrefixedBody {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for PrefixedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        this.rest.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        hint.set_lower(hint.lower().saturating_add(extra));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(extra));
        }
        hint
    }
}

// ---- crate-internal buffering -----------------------------------------------------------

/// What buffering produced.
pub(crate) enum Buffered<B> {
    /// The whole body, replayable.
    Replayable(Bytes),
    /// Too large or streaming past the limit: send this once.
    Once(B),
}

/// Reads a body up to `limit` bytes without ever holding more.
#[pin_project]
pub(crate) struct BufferBody<B> {
    body: Option<B>,
    chunks: BytesMut,
    limit: usize,
}

impl<B: ReplayBody> BufferBody<B> {
    pub(crate) fn new(body: B, limit: usize) -> Self {
        BufferBody {
            body: Some(body),
            chunks: BytesMut::new(),
            limit,
        }
    }

    /// Decides without reading when the size hint allows it.
    pub(crate) fn immediate(body: B, limit: usize) -> Result<Buffered<B>, B> {
        let hint = body.size_hint();
        if body.is_end_stream() || hint.upper() == Some(0) {
            return Ok(Buffered::Replayable(Bytes::new()));
        }
        if hint.lower() > limit as u64 {
            return Ok(Buffered::Once(body));
        }
        Err(body)
    }
}

impl<B: ReplayBody> Future for BufferBody<B> {
    type Output = Result<Buffered<B>, B::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        loop {
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(Ok(Buffered::Replayable(Bytes::new())));
            };
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => {
                    this.body.take();
                    return Poll::Ready(Ok(Buffered::Replayable(
                        std::mem::take(this.chunks).freeze(),
                    )));
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.chunks.extend_from_slice(&data);
                        if this.chunks.len() > *this.limit {
                            let rest = this.body.take().expect("checked above");
                            let prefix = std::mem::take(this.chunks).freeze();
                            return Poll::Ready(Ok(Buffered::Once(B::from_prefix(prefix, rest))));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    #[tokio::test]
    async fn small_bodies_are_buffered_large_ones_sent_once() {
        let body = Full::new(Bytes::from_static(b"hello"));
        let Err(body) = BufferBody::immediate(body, 16) else {
            panic!("must read")
        };
        let Ok(Buffered::Replayable(bytes)) = BufferBody::new(body, 16).await else {
            panic!("replayable")
        };
        assert_eq!(&bytes[..], b"hello");

        let big = Full::new(Bytes::from(vec![7u8; 100]));
        assert!(matches!(
            BufferBody::immediate(big, 16),
            Ok(Buffered::Once(_))
        ));
    }

    #[tokio::test]
    async fn a_stream_past_the_limit_is_sent_whole_once() {
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..4)
            .map(|i| Ok(Frame::data(Bytes::from(vec![i as u8; 10]))))
            .collect();
        let body: UnsyncBoxBody<Bytes, std::convert::Infallible> =
            StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync();
        let Err(body) = BufferBody::immediate(body, 15) else {
            panic!("unknown size must be read")
        };
        let Ok(Buffered::Once(body)) = BufferBody::new(body, 15).await else {
            panic!("over the limit")
        };
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 40, "nothing lost");
        assert_eq!(&all[..10], &[0u8; 10]);
        assert_eq!(&all[30..], &[3u8; 10]);
    }
}
