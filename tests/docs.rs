//! Every example in README.md and docs/ that runs without a cluster is a ```console block:
//! `$ mtlscope ...` lines, each followed by what it prints (standard error merged, as on a
//! terminal) and `? failed` where it exits 1. trycmd runs each command from the repository root
//! and compares the output, so the docs cannot drift from the program; after a change that is
//! meant, `TRYCMD=overwrite cargo test --test docs` rewrites the blocks, and the diff is
//! reviewed like code. Examples that need a cluster, an interface or a file that is not in
//! the repository stay in ```sh blocks and are not run.

#[test]
fn examples_in_the_docs_print_what_they_show() {
    trycmd::TestCases::new()
        .register_bin("mtlscope", std::path::Path::new(env!("CARGO_BIN_EXE_mtlscope")))
        // A terminal of 200 columns, with neither CI nor GitHub annotations.
        .env("COLUMNS", "200")
        .env("NO_COLOR", "1")
        .env("CI", "")
        .env("GITHUB_ACTIONS", "")
        .case("README.md")
        .case("docs/*.md");
}
