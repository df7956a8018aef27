//! The WebAssembly engine: the only module that configures wasmtime.
//!
//! - Components are compiled off the event path by [`Engine::load`], through
//!   an on-disk cache keyed by content hash and engine compatibility hash.
//! - Each plugin version is linked once into an `InstancePre` (kept in
//!   [`PluginVersion`]). [`Engine::instantiate`] makes an [`Instance`] of it
//!   that serves many calls; the worker pool keeps one per worker and plugin,
//!   and recycles it after any fault and every [`RECYCLE_AFTER`] calls.
//!   [`Engine::call`] runs one call on a fresh instance (`isolation =
//!   "per-event"`).
//! - Every call runs under an epoch deadline and a memory cap ([`Limits`]). A
//!   trap, a timeout or a memory overrun becomes a typed [`Fault`] for that
//!   one call; the engine and every other plugin go on.
//! - WASI is linked with a locked-down context (see `context`): no files,
//!   sockets, environment or real clock; clocks and randomness derive from
//!   the event, so a plugin is a pure function of (event, state, config).

mod cache;
mod context;
mod output;

use crate::bindings::{Handler, HandlerPre};
pub use crate::config::Limits;

use crate::event::{Emit, Event, HandlerError, MAX_ERROR_TEXT, truncate_text};
use crate::state::{Reads, StateRead, Writes};
use cache::CompileCache;
use context::CallCtx;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, Linker, types::ComponentItem};

/// How often the epoch advances; deadlines are rounded up to this.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How many calls a reused instance serves before it is replaced, so that
/// memory a plugin leaks or fragments is returned.
pub const RECYCLE_AFTER: u64 = 10_000;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// The largest memory cap any plugin may ask for, in bytes. The pooling
    /// allocator reserves slots of this size.
    pub max_memory_bytes: usize,
    /// How many instances may exist at once in the pooling allocator; 0
    /// turns the pooling allocator off (on-demand allocation). The worker
    /// pool keeps at most one warm instance per worker and plugin, so this
    /// must be larger than `workers * plugins`, with room for reload checks
    /// and the harness (`service::run` sizes it so).
    pub pool_size: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            cache_dir: default_cache_dir(),
            max_memory_bytes: 512 << 20,
            pool_size: 128,
        }
    }
}

/// `$SWITCHYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/switchyard`, else
/// `$HOME/.cache/switchyard`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SWITCHYARD_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("switchyard"))
}

/// Whether a version was compiled now or loaded from the compile cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled from wasm by this process.
    Compiled,
    /// Loaded from the on-disk compile cache.
    Cached,
}

/// One loaded, linked and checked version of a plugin.
pub struct PluginVersion {
    /// The plugin's name.
    pub name: Arc<str>,
    /// The SHA-256 of the wasm bytes, in hex.
    pub hash: String,
    /// Where the compiled code came from.
    pub origin: Origin,
    /// The component's bytes, kept so that the version can be stored and
    /// served by other instances after a rollback to it.
    pub wasm: Arc<[u8]>,
    pre: HandlerPre<CallCtx>,
}

impl PluginVersion {
    /// The short version label put on emits: the first 12 hex digits of the hash.
    pub fn label(&self) -> &str {
        &self.hash[..12]
    }
}

impl std::fmt::Debug for PluginVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginVersion")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

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
    #[error("does not implement switchyard:plugin/handler@0.1.0: {0}")]
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
    pub fn class(&self) -> &'static str {
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

/// What one successful call (the handler returned) produced.
#[derive(Debug)]
pub struct CallOutput {
    /// What the handler returned.
    pub result: Result<Vec<Emit>, HandlerError>,
    /// The state writes it staged; apply them only if `result` is `Ok`.
    pub writes: Writes,
    /// The committed values it read, to check at commit time.
    pub reads: Reads,
}

/// The inputs of one call besides the event.
pub struct CallInput<'a> {
    /// The state the plugin reads (committed state, or a batch's view of it).
    pub state: &'a Arc<dyn StateRead>,
    /// The plugin's config object.
    pub config: &'a Arc<Map<String, Value>>,
    /// The limits for this call.
    pub limits: Limits,
}

/// An instance of one plugin version that serves call after call.
///
/// Its linear memory persists between calls; everything else a call can see
/// is reset first (see `context`). Drop it after any [`Fault`]: a trap can
/// leave the guest's memory inconsistent.
pub struct Instance {
    store: wasmtime::Store<CallCtx>,
    handler: Handler,
    hash: String,
    calls: u64,
}

impl Instance {
    /// The content hash of the version it runs.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether it has served its share of calls and should be replaced.
    pub fn worn_out(&self) -> bool {
        self.calls >= RECYCLE_AFTER
    }

    /// Runs the handler on `event`.
    pub fn call(&mut self, event: &Event, input: CallInput<'_>) -> Result<CallOutput, Fault> {
        self.calls += 1;
        self.store.data_mut().begin(
            &event.id,
            &event.time,
            input.state.clone(),
            input.config.clone(),
            input.limits,
        );
        let ticks = input
            .limits
            .timeout
            .as_nanos()
            .div_ceil(EPOCH_TICK.as_nanos())
            .max(1);
        self.store
            .set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        let wit_event = event.into();
        let outcome = self.handler.call_handle(&mut self.store, &wit_event);
        let ctx = self.store.data_mut();
        ctx.log_output();
        match outcome {
            Err(e) => Err(classify(
                &e,
                ctx.limiter.exceeded,
                ctx.slept_past_deadline,
                input.limits,
                &ctx.call_stderr(),
            )),
            Ok(_) if ctx.state_error.is_some() => {
                Err(Fault::Host(ctx.state_error.take().unwrap_or_default()))
            }
            Ok(result) => {
                let result: Result<Vec<crate::event::Emit>, _> = result
                    .map(|emits| emits.into_iter().map(Into::into).collect())
                    .map_err(Into::into);
                // The emits were copied out of the guest into the host: they
                // count against the same budget as staged state and logs.
                if let Ok(emits) = &result
                    && ctx.charge(emits.iter().map(emit_bytes).sum()).is_err()
                {
                    return Err(Fault::Memory(input.limits.memory_bytes));
                }
                Ok(CallOutput {
                    result,
                    writes: std::mem::take(&mut ctx.staged),
                    reads: std::mem::take(&mut ctx.reads),
                })
            }
        }
    }
}

/// A wasmtime engine, its linker and compile cache, and the epoch ticker.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<CallCtx>,
    cache: Option<CompileCache>,
    stop_ticker: Arc<AtomicBool>,
    compiles: AtomicU64,
}

impl Engine {
    /// Builds an engine with the pooling allocator, falling back to on-demand
    /// allocation when the pool's address space cannot be reserved.
    pub fn new(options: EngineOptions) -> anyhow::Result<Self> {
        let engine = match wasmtime::Engine::new(&config(&options, options.pool_size > 0)) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e}); using on-demand allocation");
                wasmtime::Engine::new(&config(&options, false))?
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        context::add_virtual_sleeps(&mut linker)?;
        crate::bindings::Handler::add_to_linker::<_, wasmtime::component::HasSelf<CallCtx>>(
            &mut linker,
            |ctx| ctx,
        )?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.weak();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("switchyard-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                })?;
        }
        let cache = options
            .cache_dir
            .map(|dir| CompileCache::new(dir.join("components"), &engine));
        Ok(Engine {
            engine,
            linker,
            cache,
            stop_ticker,
            compiles: AtomicU64::new(0),
        })
    }

    /// How many components this engine compiled (cache misses).
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Reads, compiles (or loads from cache), links and checks a plugin file.
    pub fn load_file(&self, name: &str, path: &Path) -> Result<PluginVersion, LoadError> {
        let bytes = std::fs::read(path)?;
        self.load(name, &bytes)
    }

    /// Compiles (or loads from cache), links and checks a plugin.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<PluginVersion, LoadError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm);
        }
        if wasmparser::Parser::is_core_wasm(wasm) {
            return Err(LoadError::CoreModule);
        }
        let hash = hex::encode(Sha256::digest(wasm));
        let (component, origin) = match self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &hash))
        {
            Some(component) => (component, Origin::Cached),
            None => {
                let component = Component::new(&self.engine, wasm)
                    .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                self.compiles.fetch_add(1, Ordering::Relaxed);
                if let Some(cache) = &self.cache {
                    cache.store(&hash, &component);
                }
                (component, Origin::Compiled)
            }
        };
        let pre = self.link(&component)?;
        Ok(PluginVersion {
            name: name.into(),
            hash,
            origin,
            wasm: wasm.into(),
            pre,
        })
    }

    /// Checks the component's imports and exports against the world, naming
    /// the first mismatch.
    fn link(&self, component: &Component) -> Result<HandlerPre<CallCtx>, LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        match ty.exports(&self.engine).find(|(n, _)| *n == "handle") {
            None => {
                return Err(LoadError::WrongWorld(format!(
                    "it has no export named `handle` (it exports: {})",
                    list_or_none(&exports)
                )));
            }
            Some((_, ext)) if matches!(ext.ty, ComponentItem::ComponentFunc(_)) => {}
            Some(_) => {
                return Err(LoadError::WrongWorld(
                    "its export `handle` is not a function".into(),
                ));
            }
        }
        for (import, _) in ty.imports(&self.engine) {
            let provided = import.starts_with("wasi:")
                || ["types", "log", "state", "config"]
                    .iter()
                    .any(|i| import == format!("switchyard:plugin/{i}@0.1.0"));
            if !provided {
                return Err(LoadError::WrongWorld(format!(
                    "it imports `{import}`, which the host does not provide"
                )));
            }
        }
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::WrongWorld(one_line(&e)))?;
        HandlerPre::new(instance_pre).map_err(|e| {
            LoadError::WrongWorld(format!(
                "its export `handle` has the wrong type, expected `func(event: event) -> result<list<emit>, handler-error>`: {}",
                one_line(&e)
            ))
        })
    }

    /// Makes an instance of `version`, for [`Instance::call`].
    pub fn instantiate(&self, version: &PluginVersion) -> Result<Instance, Fault> {
        let ctx = CallCtx::new(version.name.clone(), Default::default());
        let mut store = wasmtime::Store::new(&self.engine, ctx);
        store.limiter(|ctx| &mut ctx.limiter);
        store.epoch_deadline_trap();
        // Instantiation runs the guest's start code; give it the default
        // deadline, and each call sets its own.
        store.set_epoch_deadline(
            u64::try_from(Limits::default().timeout.as_nanos() / EPOCH_TICK.as_nanos())
                .unwrap_or(u64::MAX),
        );
        let handler = version.pre.instantiate(&mut store).map_err(|e| {
            let text = one_line(&e);
            if text.contains("maximum concurrent") {
                Fault::Busy(text)
            } else {
                classify(&e, false, false, Limits::default(), &[])
            }
        })?;
        Ok(Instance {
            store,
            handler,
            hash: version.hash.clone(),
            calls: 0,
        })
    }

    /// Runs `version`'s handler on `event` in a fresh sandboxed instance.
    pub fn call(
        &self,
        version: &PluginVersion,
        event: &Event,
        input: CallInput<'_>,
    ) -> Result<CallOutput, Fault> {
        self.instantiate(version)?.call(event, input)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn config(options: &EngineOptions, pooling: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    if let Some(functions) = options
        .cache_dir
        .as_ref()
        .and_then(|dir| cache::FunctionCache::new(dir.join("functions")))
    {
        // Only fails when the compiler has no such cache; it has.
        let _ = config.enable_incremental_compilation(Arc::new(functions));
    }
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(512 << 10);
    if pooling {
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(options.pool_size)
            .total_core_instances(options.pool_size * 8)
            .total_memories(options.pool_size * 2)
            .total_tables(options.pool_size * 4)
            .max_memory_size(options.max_memory_bytes);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// The bytes an emit holds in the host.
fn emit_bytes(emit: &crate::event::Emit) -> usize {
    emit.ty.len()
        + emit.data.len()
        + emit.key.as_ref().map_or(0, String::len)
        + emit.topic.as_ref().map_or(0, String::len)
        + emit
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.len())
            .sum::<usize>()
}

fn classify(
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
fn one_line(error: &wasmtime::Error) -> String {
    let parts: Vec<String> = error
        .chain()
        .map(|e| e.to_string().lines().next().unwrap_or_default().to_string())
        .collect();
    parts.join(": ")
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}
