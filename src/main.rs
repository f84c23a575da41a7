/// mimalloc: about 930,000 allocations on the bench capture, and under glibc's malloc they were
/// 15% of the instructions (Cargo.toml; docs/performance.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(mtlscope::cli::main());
}
