//! The command line, kept thin as ripgrep keeps its binary: [`flags`] parses and checks the
//! flags, `setup` turns them into the objects that do the work, one file per command runs it
//! (`analyze`, `check`, `capture`, `sniff` and `cleanup`, `agent`, `monitor`, `policy explain`, `readiness`, and
//! `completions` and `man` in `generate`) through the library, and this file maps the outcome to an exit status. `main.rs` and the kubectl
//! plugin's binary only call [`main`] or [`main_as`].

mod agent;
mod analyze;
mod capture;
mod check;
pub mod flags;
mod generate;
mod monitor;
mod policy;
mod readiness;
mod run;
mod setup;
mod sniff;
mod values;

pub use agent::agent;
pub use analyze::analyze;
pub use capture::capture;
pub use check::check;
pub use flags::{
    AgentArgs, AnalyzeArgs, CaptureArgs, CheckArgs, CheckFormat, CleanupArgs, Cli, ClusterFlags, Command,
    CompletionsArgs, ExplainArgs, InputArgs, KubeArgs, Limits, LiveArgs, ManArgs, MonitorArgs, PolicyArgs,
    PolicyCommand, SniffArgs, StopArgs,
};
pub use generate::{completions, man};
pub use monitor::monitor;
pub use policy::explain;
pub use readiness::{ReadinessArgs, ReadinessFormat};
pub use sniff::{cleanup, sniff};

pub use crate::report::{EXIT_BAD_INPUT, EXIT_OK, EXIT_VIOLATION};

use std::io;

/// Run the command line; returns the exit status.
pub fn main() -> i32 {
    main_as("mtlscope")
}

/// As [`main`], with usage and help naming the program `bin_name` (`kubectl mtlscope` when run
/// as a kubectl plugin).
pub fn main_as(bin_name: &'static str) -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().bin_name(bin_name).get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(mut cli) => {
            cli.command.finish(&matches);
            run_cli(cli)
        }
        Err(e) => e.exit(),
    }
}

/// Run one command. An error that stops it is one line on standard error and exit status 2,
/// except a closed pipe (`mtlscope analyze x.pcap | head`): that is a normal end, status 0.
fn run_cli(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Analyze(args) => analyze(&args),
        Command::Capture(args) => capture(&args),
        Command::Check(args) => check(&args),
        Command::Policy(PolicyCommand::Explain(args)) => explain(&args),
        Command::Sniff(args) => sniff(args),
        Command::Cleanup(args) => cleanup(&args),
        Command::Agent(args) => agent(&args),
        Command::Monitor(args) => monitor(&args),
        Command::Readiness(args) => readiness::run(&args),
        Command::Completions(args) => completions(&args),
        Command::Man(args) => man(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => EXIT_OK,
        Err(e) => {
            eprintln!("mtlscope: {e:#}");
            EXIT_BAD_INPUT
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
