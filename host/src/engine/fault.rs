//! Why a file could not become a plugin version ([`LoadError`]), and why a
//! call failed without its handler returning ([`Fault`]): traps, timeouts,
//! memory overruns, host failures and a full instance pool, told apart by
//! wasmtime's typed errors.

use super::Limits;
use crate::event::{MAX_ERROR_TEXT, truncate_text};
use std::time::Duration;

/// Why a file could not become a plugin version.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error(
        "not a WebAssembly file (no `\\0asm` header); point `wasm` at a .wasm built for wasm32-wasip2"
    )]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "a core wasm module, not a component; build it with `cargo build --target wasm32-wasip2`"
    )]
    CoreModule,
    /// The component does not implement the handler world.
    #[error("does not implement switchyard:plugin/handler (0.2.0 or 0.1.0): {0}")]
    WrongWorld(String),
    /// wasmtime rejected the component.
    #[error("failed to compile: {0}")]
    Compile(String),
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
}

/// Why one call failed without the handler returning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The guest trapped (panic, unreachable, stack overflow, bad access...).
    #[error("trap: {0}")]
    Trap(String),
    /// The call ran past its deadline and was interrupted.
    #[error("timeout: interrupted after the {0:?} deadline")]
    Timeout(Duration),
    /// The guest tried to grow memory past its cap.
    #[error("memory: tried to grow linear memory past the {0}-byte cap")]
    Memory(usize),
    /// The host failed around the call (state store, instantiation).
    #[error("host: {0}")]
    Host(String),
    /// No instance could be made now (the pool is full): wait and retry.
    #[error("busy: {0}")]
    Busy(String),
}

impl Fault {
    /// The error class used in logs, dead-letter headers and metrics.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            Fault::Trap(_) => "trap",
            Fault::Timeout(_) => "timeout",
            Fault::Memory(_) => "memory",
            Fault::Host(_) => "host",
            Fault::Busy(_) => "busy",
        }
    }

    /// Whether it says nothing about the plugin or the event (the host or
    /// its store failed), so the call should wait and run again rather than
    /// be dead-lettered.
    pub fn is_transient(&self) -> bool {
        matches!(self, Fault::Host(_) | Fault::Busy(_))
    }
}

/// The fault of a call that failed with `error`: a memory overrun or a
/// virtual sleep past the deadline when the call saw one, an interrupt as a
/// timeout, anything else a trap with what the guest said on stderr.
pub(super) fn classify(
    error: &wasmtime::Error,
    memory_exceeded: bool,
    slept_past_deadline: bool,
    limits: Limits,
    stderr: &[u8],
) -> Fault {
    if memory_exceeded {
        return Fault::Memory(limits.memory_bytes);
    }
    if slept_past_deadline {
        return Fault::Timeout(limits.timeout);
    }
    let trap = match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => return Fault::Timeout(limits.timeout),
        Some(trap) => trap.to_string(),
        None => one_line(error),
    };
    // A Rust guest's panic message goes to stderr just before it aborts.
    let said: Vec<&str> = std::str::from_utf8(stderr)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note:"))
        .collect();
    let text = if said.is_empty() {
        trap
    } else {
        format!("{trap} ({})", said.join(" "))
    };
    Fault::Trap(truncate_text(&text, MAX_ERROR_TEXT))
}

/// An error chain on one line, without wasmtime's multi-line backtrace.
pub(super) fn one_line(error: &wasmtime::Error) -> String {
    let parts: Vec<String> = error
        .chain()
        .map(|e| e.to_string().lines().next().unwrap_or_default().to_string())
        .collect();
    parts.join(": ")
}
