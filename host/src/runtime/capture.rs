//! Bounded capture of a guest's stdout or stderr.
//!
//! Writes past the cap are counted and dropped, never refused: a refused
//! write makes a Rust guest's `println!` panic, and output volume is not a
//! reason to fail a step.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::lock::lock;
use crate::records::Captured;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
}

/// A capped in-memory stream; clones share the buffer.
#[derive(Clone)]
pub struct CapturePipe {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl CapturePipe {
    pub fn new(cap: usize) -> Self {
        CapturePipe {
            cap,
            buffer: Arc::default(),
        }
    }

    fn append(&self, data: &[u8]) {
        let mut buffer = lock(&self.buffer);
        let room = self.cap.saturating_sub(buffer.bytes.len());
        let kept = room.min(data.len());
        buffer.bytes.extend_from_slice(&data[..kept]);
        buffer.dropped += (data.len() - kept) as u64;
    }

    /// What was captured so far.
    pub fn captured(&self) -> Captured {
        let buffer = lock(&self.buffer);
        Captured {
            text: String::from_utf8_lossy(&buffer.bytes).into_owned(),
            truncated_bytes: buffer.dropped,
        }
    }
}

/// Permits handed to the guest per write; any size works since nothing blocks.
const WRITE_PERMIT: usize = 1 << 16;

impl OutputStream for CapturePipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturePipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturePipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CapturePipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturePipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
