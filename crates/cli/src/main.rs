//! `osml`: the operating-system layer for machine learning.
//!
//! The binary is thin: it parses arguments, calls the library crates and renders what they
//! return. Exit codes are documented in README.md: 0 success, 1 a failed check (or drift for
//! `compare`; an invalid dataset for `data`), 2 a usage or internal error, 3 an unreadable file
//! (`data`).

mod archive;
mod bench;
mod cli;
mod data;
mod doctor;
mod output;
mod place;
mod trace;
mod tune;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            // Writing into a closed pipe (`osml doctor | head`) is not an error.
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
                || err
                    .chain()
                    .filter_map(|e| e.downcast_ref::<std::io::Error>())
                    .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("osml: error: {err:#}");
            ExitCode::from(2)
        }
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
        cli::Command::Run(args) => Ok(place::run(&args)),
        cli::Command::Tune(args) => tune::run(&args),
        cli::Command::Trace(args) => trace::run(&args),
        cli::Command::Mem(args) => trace::mem(&args),
    }
}
