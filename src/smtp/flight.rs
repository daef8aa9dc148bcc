//! Output in flights: everything a session writes is queued and leaves in
//! one write when the session next waits for input (or closes), so the
//! replies to a pipelined batch, and TLS records such as session tickets
//! together with the reply that follows them, share one segment. Written
//! separately, the second small segment waits for the client's delayed ACK
//! (Nagle) — a 40 ms stall per session — and costs a system call each.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Queued output past which a write sends what is queued first, so a
/// client that sends without reading cannot grow the queue.
const MAX_QUEUED: usize = 64 * 1024;

/// A queue kept past a flight only while small: idle sessions stay small.
const KEEP_CAPACITY: usize = 4096;

/// A stream whose writes are queued until the next read, [`Flight::send`]
/// or shutdown. `flush` does not send: tokio-rustls flushes after the
/// handshake, and the session tickets it wrote then are to wait for the
/// reply that follows.
pub struct Flight<S> {
    inner: S,
    out: Vec<u8>,
    sent: usize,
    /// What is queued waits for more output, even across reads.
    held: bool,
}

impl<S> Flight<S> {
    pub fn new(inner: S) -> Flight<S> {
        Flight {
            inner,
            out: Vec::new(),
            sent: 0,
            held: false,
        }
    }

    /// Keep what is queued (session tickets after a STARTTLS handshake,
    /// which the client does not wait for) until the next output joins it
    /// or the stream shuts down.
    pub fn hold(&mut self) {
        self.held = !self.out.is_empty();
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.out.len() - self.sent
    }
}

impl<S: AsyncWrite + Unpin> Flight<S> {
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.sent < self.out.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.sent..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.sent += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Send what is queued now.
    pub async fn send(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_send(cx)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Flight<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The peer answers only what it has seen.
        if !this.held {
            ready!(this.poll_send(cx))?;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Flight<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.queued() >= MAX_QUEUED {
            ready!(this.poll_send(cx))?;
        }
        this.out.extend_from_slice(buf);
        this.held = false;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.held = false;
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A session's stream, plaintext or TLS, over a [`Flight`].
pub(super) trait Push: AsyncRead + AsyncWrite + Unpin + Send {
    /// Send everything written so far, TLS records included.
    fn push(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Push for Flight<S> {
    async fn push(&mut self) -> io::Result<()> {
        self.send().await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Push for tokio_rustls::server::TlsStream<Flight<S>> {
    async fn push(&mut self) -> io::Result<()> {
        // Moves rustls's records into the flight; does not send them.
        self.flush().await?;
        self.get_mut().0.send().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Counts the writes that reach the socket.
    struct Counting {
        writes: Vec<Vec<u8>>,
        input: Vec<u8>,
    }

    impl AsyncRead for Counting {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let n = this.input.len().min(buf.remaining());
            buf.put_slice(&this.input[..n]);
            this.input.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn counting(input: &[u8]) -> Flight<Counting> {
        Flight::new(Counting {
            writes: Vec::new(),
            input: input.to_vec(),
        })
    }

    #[tokio::test]
    async fn writes_and_flushes_leave_together_at_the_next_read() {
        let mut f = counting(b"QUIT\r\n");
        f.write_all(b"tickets").await.unwrap();
        f.flush().await.unwrap();
        f.write_all(b"250 ok\r\n").await.unwrap();
        f.flush().await.unwrap();
        assert!(f.get_ref().writes.is_empty());
        let mut buf = [0u8; 16];
        let n = f.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"QUIT\r\n");
        assert_eq!(f.get_ref().writes, vec![b"tickets250 ok\r\n".to_vec()]);
        assert_eq!(f.queued(), 0);
    }

    #[tokio::test]
    async fn held_output_waits_across_reads_for_the_next_reply() {
        let mut f = counting(b"EHLO a\r\n");
        f.write_all(b"tickets").await.unwrap();
        f.hold();
        let mut buf = [0u8; 16];
        let n = f.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"EHLO a\r\n");
        assert!(f.get_ref().writes.is_empty());
        f.write_all(b"250 ok\r\n").await.unwrap();
        let _ = f.read(&mut buf).await.unwrap();
        assert_eq!(f.get_ref().writes, vec![b"tickets250 ok\r\n".to_vec()]);
    }

    #[tokio::test]
    async fn shutdown_and_send_deliver_the_queue() {
        let mut f = counting(b"");
        f.write_all(b"221 bye\r\n").await.unwrap();
        f.send().await.unwrap();
        f.write_all(b"x").await.unwrap();
        f.shutdown().await.unwrap();
        assert_eq!(
            f.get_ref().writes,
            vec![b"221 bye\r\n".to_vec(), b"x".to_vec()]
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_sent_before_more_is_queued() {
        let mut f = counting(b"");
        let big = vec![b'a'; MAX_QUEUED];
        f.write_all(&big).await.unwrap();
        assert!(f.get_ref().writes.is_empty());
        f.write_all(b"b").await.unwrap();
        assert_eq!(f.get_ref().writes.len(), 1);
        assert_eq!(f.queued(), 1);
    }
}
