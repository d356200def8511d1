//! What a component writes to stdout and stderr (a Python runtime's traceback, a Rust
//! panic message), kept for the call's log: up to a cap, past which writes still succeed but
//! are dropped and counted. wasmtime's `MemoryOutputPipe` traps the plugin once it is full,
//! which would turn a chatty plugin into a failing one.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes one stream keeps per call.
const CAP: usize = 16 * 1024;
/// What a write may hand over at once (the guest asks before each write).
const PERMIT: usize = 64 * 1024;

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Buffer>>);

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Captured {
    fn keep(&self, data: &[u8]) {
        if let Ok(mut buffer) = self.0.lock() {
            let room = CAP.saturating_sub(buffer.bytes.len());
            let kept = data.len().min(room);
            buffer.bytes.extend_from_slice(&data[..kept]);
            buffer.dropped += data.len() - kept;
        }
    }

    /// The non-empty lines written, each with `prefix`, and a last one counting the bytes
    /// past the cap.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        let Ok(buffer) = self.0.lock() else {
            return Vec::new();
        };
        let mut lines: Vec<String> = String::from_utf8_lossy(&buffer.bytes)
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .map(|l| format!("{prefix}{l}"))
            .collect();
        if buffer.dropped > 0 {
            lines.push(format!(
                "{prefix}… {} more bytes were not kept",
                buffer.dropped
            ));
        }
        lines
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Captured {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

impl Pollable for Captured {
    /// Always ready: a write never waits.
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_cap_is_counted_not_refused() {
        let mut out = Captured::default();
        out.write(Bytes::from_static(
            b"Traceback (most recent call last):\n  boom\n",
        ))
        .unwrap();
        for _ in 0..CAP {
            out.write(Bytes::from_static(b"x")).unwrap();
        }
        let lines = out.lines("stderr: ");
        assert_eq!(lines[0], "stderr: Traceback (most recent call last):");
        assert_eq!(lines[1], "stderr:   boom");
        assert!(
            lines.last().unwrap().ends_with("more bytes were not kept"),
            "{lines:?}"
        );
        assert_eq!(out.check_write().unwrap(), PERMIT);
    }
}
