//! The `wfhost` command. Everything it does lives in the library; this
//! binary only parses arguments, prints, and picks the exit status.

mod cli;

/// Steps allocate on one thread and free on another (the committer's, the
/// attempt pool's); mimalloc takes that without the lock contention of
/// glibc's arenas (BENCHMARKS.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // SAFETY: mi_collect only frees what mimalloc holds unused.
    wfhost::memory::set_release(|| unsafe { libmimalloc_sys::mi_collect(true) });
    cli::main()
}
