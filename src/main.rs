//! The `wasmjob` binary: a thin shell around [`wasmjob::cli`].

fn main() -> std::process::ExitCode {
    wasmjob::cli::main()
}
