//! The `wasmjob` binary: a thin shell around [`wasmjob::cli`].

/// mimalloc rather than the system allocator: the host allocates a pod's objects on one
/// thread and frees the pod's store on another, which glibc's arenas serve with heap growth
/// (mprotect) and cross-CPU TLB flushes; mimalloc's thread-local free lists do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wasmjob::cli::main()
}
