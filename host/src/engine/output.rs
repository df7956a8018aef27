//! What a plugin writes to stdout and stderr: kept for the current call
//! only, capped, and never refused.
//!
//! A plugin that prints (a Rust `eprintln!`, a Python `print`) must never
//! fail because it printed. wasmtime's `MemoryOutputPipe` keeps everything
//! a warm instance ever wrote and refuses writes past its capacity, which
//! turned a plugin printing a couple of hundred bytes per call into a trap
//! some 5,000 calls into each instance. Here each call starts empty
//! ([`CallOutput::clear`]); a call's first [`KEEP`] bytes are kept (for a
//! trap's message and the log) and the rest are counted and dropped.

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How many bytes of one call's output are kept.
pub(crate) const KEEP: usize = 64 << 10;

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: usize,
}

/// One output stream (stdout or stderr) of a warm instance.
#[derive(Debug, Clone, Default)]
pub struct CallOutput(Arc<Mutex<Captured>>);

impl CallOutput {
    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the previous call's output.
    pub(crate) fn clear(&self) {
        let mut captured = self.lock();
        captured.kept.clear();
        captured.dropped = 0;
    }

    /// The current call's output as kept, and how many bytes past it were
    /// dropped.
    pub(crate) fn contents(&self) -> (Vec<u8>, usize) {
        let captured = self.lock();
        (captured.kept.clone(), captured.dropped)
    }

    fn keep(&self, bytes: &[u8]) {
        let mut captured = self.lock();
        let room = KEEP.saturating_sub(captured.kept.len());
        let taken = room.min(bytes.len());
        captured.kept.extend_from_slice(&bytes[..taken]);
        captured.dropped += bytes.len() - taken;
    }
}

#[async_trait::async_trait]
impl OutputStream for CallOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always room: what is past the cap is dropped, not refused.
        Ok(1 << 20)
    }
}

#[async_trait::async_trait]
impl Pollable for CallOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CallOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.keep(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CallOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CallOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_keeps_its_first_bytes_and_never_refuses_the_rest() {
        let mut out = CallOutput::default();
        for _ in 0..1000 {
            out.write(Bytes::from(vec![b'x'; 200])).unwrap();
        }
        let (kept, dropped) = out.contents();
        assert_eq!(kept.len(), KEEP);
        assert_eq!(dropped, 200 * 1000 - KEEP);
        out.clear();
        out.write(Bytes::from_static(b"next")).unwrap();
        assert_eq!(out.contents(), (b"next".to_vec(), 0));
    }
}
