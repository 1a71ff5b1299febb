use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: intake and delivery allocate many small, short-lived
/// buffers across threads, and glibc's malloc/free took about a fifth of the CPU under load
/// (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tocsin::cli::main()
}
