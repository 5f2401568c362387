//! `osml`: the operating-system layer for machine learning.
//!
//! The binary is thin: it parses arguments, calls the library crates and renders what they
//! return. Subcommands return an outcome or a typed error; [`exit::report`] is the one place
//! an error becomes a message and an exit code (README.md, "Exit codes").

// Output goes through `writeln!` on a locked handle (stdout: a closed pipe is an error that
// ends the command with 0) or `output::say!` (stderr: best effort). `println!` panics on a
// closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod archive;
mod bench;
mod cli;
mod data;
mod doctor;
mod exit;
mod output;
mod place;
mod trace;
mod tune;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Temporary files and unpacked captures registered from now on are removed on SIGINT,
    // SIGTERM and SIGHUP (osml_sys::cleanup).
    osml_sys::cleanup::enable();
    let outcome = run();
    // Interrupted work may have failed because its temporary files were just removed: the
    // process then ends by the signal, once the cleanup is done, not with that failure.
    osml_sys::cleanup::before_exit();
    match outcome {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Doctor(args) => doctor::run(&args),
        cli::Command::Data { command } => data::run(&command),
        cli::Command::Bench(args) => bench::run(&args),
        cli::Command::Topo(args) => place::topo(&args),
        cli::Command::Affinity(args) => place::affinity(&args),
        cli::Command::Run(args) => place::run(&args),
        cli::Command::Tune(args) => tune::run(&args),
        cli::Command::Trace(args) => trace::run(&args),
        cli::Command::Mem(args) => trace::mem(&args),
    }
}
