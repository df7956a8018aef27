//! The `switchyard` command; see [`switchyard::cli`].

/// jemalloc instead of glibc's malloc, for Rust and (unprefixed) for
/// librdkafka too, as Vector runs: the router allocates and frees a few
/// dozen small buffers per record across threads (decoded fields, outputs,
/// delivery reports), which glibc's arenas served at about a fifth of the
/// router's CPU. `_RJEM_MALLOC_CONF` is not read (unprefixed, jemalloc
/// reads `MALLOC_CONF`). See BENCHMARKS.md, "The hot path", item 11.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    switchyard::main()
}
