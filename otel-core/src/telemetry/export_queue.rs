//! The bounded export queue: the SDK's batch span processor behind a gate that counts the
//! spans it has to drop when the queue is full, and reports it once.
//!
//! The SDK 0.33 `BatchSpanProcessor` counts drops internally but exposes the count only
//! through its own internal logs (the `internal-logs` feature, off here), so the gate keeps
//! its own count: it admits at most `max_queue_size` spans that the exporter has not yet
//! received, which also guarantees the SDK's channel (of the same size) never overflows.
//!
//! ```
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//! use otel_core::telemetry::BoundedBatchProcessor;
//!
//! let processor = BoundedBatchProcessor::new(InMemorySpanExporter::default(), 2048);
//! let dropped = processor.dropped_spans();
//! let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
//! assert_eq!(dropped.get(), 0);
//! # drop(provider);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};

/// A batch span processor with a bounded queue whose drops are counted
/// ([`dropped_spans`](Self::dropped_spans)) and reported once on stderr, not per span.
#[derive(Debug)]
pub struct BoundedBatchProcessor {
    inner: BatchSpanProcessor,
    gate: Arc<Gate>,
}

/// A shared, read-only view of how many spans a [`BoundedBatchProcessor`] dropped.
#[derive(Debug, Clone)]
pub struct DroppedSpans(Arc<Gate>);

impl DroppedSpans {
    /// Spans dropped so far because the export queue was full.
    pub fn get(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl BoundedBatchProcessor {
    /// Batches spans for `exporter` with at most `max_queue_size` spans waiting.
    pub fn new<E: SpanExporter + 'static>(exporter: E, max_queue_size: usize) -> Self {
        let max_queue_size = max_queue_size.max(1);
        let gate = Arc::new(Gate {
            pending: AtomicUsize::new(0),
            capacity: max_queue_size,
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        });
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(max_queue_size)
            .with_max_export_batch_size(max_queue_size.min(512))
            .build();
        let inner = BatchSpanProcessor::builder(GatedExporter {
            inner: exporter,
            gate: gate.clone(),
        })
        .with_batch_config(config)
        .build();
        BoundedBatchProcessor { inner, gate }
    }

    /// A handle on the drop count that outlives the processor's move into the provider.
    pub fn dropped_spans(&self) -> DroppedSpans {
        DroppedSpans(self.gate.clone())
    }
}

impl SpanProcessor for BoundedBatchProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx)
    }

    fn on_end(&self, span: SpanData) {
        if self.gate.pending.fetch_add(1, Ordering::AcqRel) >= self.gate.capacity {
            self.gate.pending.fetch_sub(1, Ordering::AcqRel);
            self.gate.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.gate.warned.swap(true, Ordering::Relaxed) {
                // stderr, not `tracing`: this runs inside the subscriber's span-close callback.
                eprintln!(
                    "otel-core: warning: the span export queue is full ({} spans); spans are \
                     being dropped (the exporter is slow or down). This is reported once; the \
                     total is printed at shutdown. Raise OTEL_BSP_MAX_QUEUE_SIZE or \
                     Telemetry::max_queue_size if the exporter is healthy.",
                    self.gate.capacity
                );
            }
            return;
        }
        self.inner.on_end(span)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.inner.shutdown_with_timeout(timeout);
        let dropped = self.gate.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            eprintln!(
                "otel-core: {dropped} spans were dropped because the export queue (size {}) was full",
                self.gate.capacity
            );
        }
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

// ---- helpers --------------------------------------------------------------------------------

#[derive(Debug)]
struct Gate {
    /// Spans handed to the batch processor that the exporter has not received yet.
    pending: AtomicUsize,
    capacity: usize,
    dropped: AtomicU64,
    warned: AtomicBool,
}

/// Tells the gate when the batch processor hands spans to the exporter.
#[derive(Debug)]
struct GatedExporter<E> {
    inner: E,
    gate: Arc<Gate>,
}

impl<E: SpanExporter> SpanExporter for GatedExporter<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len();
        // Saturating: never underflow even if the SDK hands over spans we did not count.
        let _ = self
            .gate
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::sync::Mutex;
    use std::sync::mpsc;

    /// An exporter that blocks in `export` until released, like a collector that hangs.
    #[derive(Debug)]
    struct Stuck {
        release: Mutex<mpsc::Receiver<()>>,
        exported: Arc<AtomicUsize>,
    }

    impl SpanExporter for Stuck {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let _ = self.release.lock().unwrap().recv();
            self.exported.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_growing() {
        let (release, rx) = mpsc::channel();
        let exported = Arc::new(AtomicUsize::new(0));
        let processor = BoundedBatchProcessor::new(
            Stuck {
                release: Mutex::new(rx),
                exported: exported.clone(),
            },
            4,
        );
        let dropped = processor.dropped_spans();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("t");
        for _ in 0..20 {
            tracer.in_span("work", |_| {});
        }
        // At most 4 spans wait in the queue and at most one batch of 4 is stuck in the
        // exporter: at least 12 of the 20 were dropped and counted, none queued unbounded.
        assert!(dropped.get() >= 12, "dropped {}", dropped.get());
        for _ in 0..20 {
            let _ = release.send(());
        }
        drop(release);
        provider.shutdown().unwrap();
        assert_eq!(exported.load(Ordering::SeqCst) as u64 + dropped.get(), 20);
    }
}
