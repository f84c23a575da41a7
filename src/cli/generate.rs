//! `mtlscope completions SHELL` and `mtlscope man`: shell completions (clap_complete) and man
//! pages (clap_mangen) generated from the very [`Cli`] definition that parses the command line,
//! so that they cannot drift from it. Both name the program `mtlscope`: the kubectl plugin's
//! completions are kubectl's business.

use super::flags::{Cli, CompletionsArgs, ManArgs};
use crate::report::EXIT_OK;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::{self, Write};

/// `mtlscope completions SHELL`: the script on standard output.
pub fn completions(args: &CompletionsArgs) -> Result<i32> {
    let mut out = io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "mtlscope", &mut out);
    out.flush().context("writing to standard output")?;
    Ok(EXIT_OK)
}

/// `mtlscope man`: mtlscope(1) on standard output; with `--dir`, a page per command
/// (mtlscope.1, mtlscope-analyze.1, mtlscope-policy-explain.1, ...) written to that folder.
pub fn man(args: &ManArgs) -> Result<i32> {
    let cmd = Cli::command().bin_name("mtlscope");
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("--dir {}: cannot create it", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("--dir {}: cannot write the man pages", dir.display()))?;
        }
        None => {
            let mut out = io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .and_then(|()| out.flush())
                .context("writing to standard output")?;
        }
    }
    Ok(EXIT_OK)
}
