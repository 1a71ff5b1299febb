//! Serving connections: our own accept loop over hyper, because axum's `serve` has no limits.
//! A connection beyond `http.max_connections` is closed as soon as it is accepted; a
//! request's headers must arrive within `http.header_read_timeout` of the connection's
//! opening or of the first byte after a rest, and a keep-alive connection resting between
//! requests is closed after `http.idle_timeout` ([`ConnectionClock`], fed by a wrapper
//! around the socket and one around the service, since hyper's single timer cannot tell
//! the two apart). On shutdown, accepting stops and open connections are asked to finish
//! their request.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{extract::ConnectInfo, Extension, Router};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::Sleep,
};

use super::conn_clock::ConnectionClock;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long open connections may take to finish once shutdown starts.
    pub drain: Duration,
}

pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer is off: it would close resting connections too (see above).
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: give the system a moment.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%client, limit = limits.max_connections, "too many open connections; closing a new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // What `ConnectInfo<SocketAddr>` reads (login throttling by client address).
        let service = router
            .clone()
            .layer(Extension(ConnectInfo::<SocketAddr>(client)));
        let clock = Arc::new(Mutex::new(Shared {
            clock: ConnectionClock::new(
                Instant::now(),
                limits.header_read_timeout,
                limits.idle_timeout,
            ),
            reader: None,
        }));
        let connection = http.serve_connection(
            TokioIo::new(Timed::new(stream, clock.clone())),
            Clocked {
                inner: TowerToHyperService::new(service),
                clock,
            },
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain time; closing them");
    }
}

/// What the socket and the service of one connection share.
struct Shared {
    clock: ConnectionClock,
    /// A read left waiting without a deadline while a request was served: woken when the
    /// answer is given, so that the rest's deadline gets its timer (hyper may not read
    /// again on its own before the client sends something).
    reader: Option<std::task::Waker>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // Nothing under this lock can panic; a poisoned lock still holds a usable clock.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The client socket, telling the clock when bytes arrive and failing a read that waits past
/// the clock's deadline (hyper then closes the connection).
struct Timed {
    io: TcpStream,
    clock: Arc<Mutex<Shared>>,
    timer: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
}

impl Timed {
    fn new(io: TcpStream, clock: Arc<Mutex<Shared>>) -> Self {
        Self {
            io,
            clock,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_for: None,
        }
    }
}

impl AsyncRead for Timed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    lock(&this.clock).clock.bytes_arrived(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = {
                    let mut shared = lock(&this.clock);
                    let deadline = shared.clock.deadline();
                    if deadline.is_none() {
                        shared.reader = Some(cx.waker().clone());
                    }
                    deadline
                };
                let Some(deadline) = deadline else {
                    return Poll::Pending;
                };
                if this.armed_for != Some(deadline) {
                    this.timer.as_mut().reset(deadline.into());
                    this.armed_for = Some(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client waited too long to send a request",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Timed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The service, telling the clock when a request starts being served and when it is answered.
struct Clocked<S> {
    inner: S,
    clock: Arc<Mutex<Shared>>,
}

impl<S, R> hyper::service::Service<R> for Clocked<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        lock(&self.clock).clock.request_started();
        let answer = self.inner.call(request);
        let clock = self.clock.clone();
        Box::pin(async move {
            let response = answer.await;
            let reader = {
                let mut shared = lock(&clock);
                shared.clock.answered(Instant::now());
                shared.reader.take()
            };
            if let Some(reader) = reader {
                reader.wake();
            }
            response
        })
    }
}
