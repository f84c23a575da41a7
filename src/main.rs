/// mimalloc: about 930,000 allocations on the bench capture, and under glibc's malloc they were
/// 15% of the instructions (Cargo.toml; docs/performance.md, "Allocator").
/// Linux only: mimalloc's macOS build needs the SDK's headers, which the other-target checks
/// (.ci/check-targets) do not have, and the plugin does not need it.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(mtlscope::cli::main());
}
