//! The `switchyard` command; see [`switchyard::cli`].

fn main() -> std::process::ExitCode {
    switchyard::main()
}
