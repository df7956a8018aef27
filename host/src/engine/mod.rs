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
mod determinism;
mod fault;
mod imports;
mod instance;
mod output;

pub use fault::{Fault, LoadError};
use fault::{classify, one_line};
use instance::Bound;
pub use instance::{CallInput, CallOutput, Instance, StagedTimers};

use crate::bindings::{v1, v2};
pub use crate::config::Limits;

use crate::event::Event;
use cache::CompileCache;
use context::CallCtx;
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
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
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
    pre: Pre,
}

/// A linked component, in the contract version it targets.
enum Pre {
    V1(v1::HandlerPre<CallCtx>),
    V2(v2::HandlerPre<CallCtx>),
}

impl PluginVersion {
    /// The contract version its component targets: `0.2.0` or `0.1.0`.
    pub fn contract(&self) -> &'static str {
        match self.pre {
            Pre::V1(_) => "0.1.0",
            Pre::V2(_) => "0.2.0",
        }
    }

    /// The short version label put on emits: the first 12 hex digits of the hash.
    pub(crate) fn label(&self) -> &str {
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
        determinism::add_virtual_sleeps(&mut linker)?;
        // Both contract versions: their interfaces have distinct names
        // (`@0.1.0`, `@0.2.0`), so a component links against the one it
        // was built for.
        v2::Handler::add_to_linker::<_, wasmtime::component::HasSelf<CallCtx>>(
            &mut linker,
            |ctx| ctx,
        )?;
        v1::Handler::add_to_linker::<_, wasmtime::component::HasSelf<CallCtx>>(
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
    fn link(&self, component: &Component) -> Result<Pre, LoadError> {
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
                || ["types", "log", "state", "config"].iter().any(|i| {
                    import == format!("switchyard:plugin/{i}@0.1.0")
                        || import == format!("switchyard:plugin/{i}@0.2.0")
                })
                || import == "switchyard:plugin/timers@0.2.0"
                || import == "switchyard:plugin/ids@0.2.0";
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
        if exports.iter().any(|e| e == "on-timer") {
            return v2::HandlerPre::new(instance_pre)
                .map(Pre::V2)
                .map_err(|e| {
                    LoadError::WrongWorld(format!(
                        "its exports `handle` and `on-timer` do not have the types of switchyard:plugin@0.2.0: {}",
                        one_line(&e)
                    ))
                });
        }
        v1::HandlerPre::new(instance_pre).map(Pre::V1).map_err(|e| {
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
        let handler = match &version.pre {
            Pre::V1(pre) => pre.instantiate(&mut store).map(Bound::V1),
            Pre::V2(pre) => pre.instantiate(&mut store).map(Bound::V2),
        }
        .map_err(|e| {
            // The pooling allocator's typed error: every slot is taken.
            if e.is::<wasmtime::PoolConcurrencyLimitError>() {
                Fault::Busy(one_line(&e))
            } else {
                classify(&e, false, false, Limits::default(), &[])
            }
        })?;
        Ok(Instance {
            store,
            handler,
            hash: version.hash.clone(),
            calls: 0,
            event_buf: None,
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
    // `SWITCHYARD_PERF_MAP=1` writes /tmp/perf-<pid>.map, so that `perf
    // report` names the plugins' compiled functions (BENCHMARKS.md, P8).
    if std::env::var_os("SWITCHYARD_PERF_MAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
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

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}
