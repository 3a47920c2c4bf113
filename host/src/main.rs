//! The `wfhost` command. Everything it does lives in the library; this
//! binary only parses arguments, prints, and picks the exit status.

mod cli;

/// Steps allocate on one thread and free on another (the committer's, the
/// attempt pool's); mimalloc takes that without the lock contention of
/// glibc's arenas (BENCHMARKS.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Makes freed memory go back to the system at once, not after
/// mimalloc's purge delay: a worker's large message is often freed by
/// another thread than the one that read it, and a delayed purge there
/// waits for that thread's next allocation, which an idle worker never
/// makes.
fn purge_at_once() {
    // mimalloc 2's `mi_option_purge_delay` (after `mi_option_eager_commit_delay`,
    // 14), which libmimalloc-sys does not name.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option mimalloc reads on every purge.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}

fn main() -> std::process::ExitCode {
    // SAFETY: mi_collect only frees what mimalloc holds unused.
    wfhost::memory::set_release(|| unsafe { libmimalloc_sys::mi_collect(true) });
    cli::main()
}
