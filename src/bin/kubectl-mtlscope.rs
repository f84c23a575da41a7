//! `kubectl mtlscope ...`: kubectl finds this binary on PATH by its name and runs it as a plugin.
fn main() {
    std::process::exit(mtlscope::cli::main_as("kubectl mtlscope"));
}
