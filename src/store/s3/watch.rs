//! Uploads judged by progress, not by total time: a request with a body
//! times out when no byte of it has been taken for `--request-timeout`, or
//! when its answer does not come within that time of the last byte.
//!
//! A plain attempt timeout cannot tell a large part on a slow link from a
//! stalled one. So the body of each upload attempt is wrapped (after it is
//! signed, as the SDK's own stalled-stream protection does) in a body that
//! hands the HTTP client its bytes in small slices and notes the time of
//! each; [`within`] races the request against that clock.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// The slice the body is handed out in: small enough that the time of the
/// last slice taken is the time the socket last took bytes, give or take
/// the client's write buffer.
const SLICE: usize = 64 * 1024;

/// When a request last made progress.
#[derive(Debug)]
pub struct Watch {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Watch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// An interceptor that puts this watch on the request's body.
    pub fn interceptor(self: &Arc<Self>) -> WatchBody {
        WatchBody(self.clone())
    }
}

/// The request made no progress for the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled;

/// Runs `request` until it ends, or until `watch` has seen no progress for
/// `timeout`.
pub async fn within<T>(
    watch: &Watch,
    timeout: Duration,
    request: impl Future<Output = T>,
) -> Result<T, Stalled> {
    let idle = async {
        loop {
            let deadline = watch.last() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        r = request => Ok(r),
        () = idle => Err(Stalled),
    }
}

/// Wraps each request body so that [`Watch`] sees it taken.
#[derive(Debug)]
pub struct WatchBody(Arc<Watch>);

impl Intercept for WatchBody {
    fn name(&self) -> &'static str {
        "mediashift::WatchBody"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let watch = self.0.clone();
        watch.touch();
        let body = std::mem::replace(context.request_mut().body_mut(), SdkBody::taken());
        let body = body.map_preserve_contents(move |inner| {
            SdkBody::from_body_1_x(Sliced {
                inner,
                rest: Bytes::new(),
                watch: watch.clone(),
            })
        });
        *context.request_mut().body_mut() = body;
        Ok(())
    }
}

/// A body handed out in slices, each noted on the watch.
struct Sliced {
    inner: SdkBody,
    rest: Bytes,
    watch: Arc<Watch>,
}

impl Sliced {
    fn slice(&mut self) -> Frame<Bytes> {
        let n = self.rest.len().min(SLICE);
        self.watch.touch();
        Frame::data(self.rest.split_to(n))
    }
}

impl Body for Sliced {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if !this.rest.is_empty() {
            return Poll::Ready(Some(Ok(this.slice())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    this.rest = data;
                    Poll::Ready(Some(Ok(this.slice())))
                }
                Err(frame) => {
                    this.watch.touch();
                    Poll::Ready(Some(Ok(frame)))
                }
            },
            Poll::Ready(None) => {
                this.watch.touch();
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = Body::size_hint(&self.inner);
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_request_ends_only_when_it_stops_making_progress() {
        let ms = Duration::from_millis;
        let t = ms(200);
        // Progress every 120 ms for 600 ms: never idle for 200 ms.
        let watch = Watch::new();
        let w = watch.clone();
        let slow_but_moving = async move {
            for _ in 0..5 {
                tokio::time::sleep(ms(120)).await;
                w.touch();
            }
            "done"
        };
        assert_eq!(within(&watch, t, slow_but_moving).await, Ok("done"));
        // Then silence: cut 200 ms after the last progress.
        let watch = Watch::new();
        let w = watch.clone();
        let started = Instant::now();
        let stalls = async move {
            tokio::time::sleep(ms(150)).await;
            w.touch();
            std::future::pending::<()>().await;
        };
        assert_eq!(within(&watch, t, stalls).await, Err(Stalled));
        let took = started.elapsed();
        assert!(took >= ms(340) && took < ms(1000), "{took:?}");
    }

    #[tokio::test]
    async fn the_body_is_handed_out_whole_in_slices() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let watch = Watch::new();
        let body = Sliced {
            inner: SdkBody::from(data.clone()),
            rest: Bytes::new(),
            watch,
        };
        assert_eq!(Body::size_hint(&body).exact(), Some(200_000));
        let mut body = body;
        let mut got = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            let d = frame.unwrap().into_data().unwrap();
            assert!(d.len() <= SLICE);
            got.extend_from_slice(&d);
            frames += 1;
        }
        assert_eq!(got, data);
        assert_eq!(frames, 4, "200,000 bytes in 64 KiB slices");
    }
}
