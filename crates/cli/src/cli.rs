//! Command-line arguments, as clap sees them. `doctor::Config::from_args` turns them into a
//! validated configuration in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The operating-system layer for machine learning.
#[derive(Debug, Parser)]
#[command(name = "osml", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect this host and judge it for ML work.
    ///
    /// Reads /proc and /sys (or a capture of them), compares what it finds with a profile and
    /// prints one finding per check: what was seen, what is expected, why it matters and the
    /// exact fix. Exit status: 0 no check failed, 1 at least one failed, 2 usage or internal
    /// error.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DoctorArgs {
    #[command(subcommand)]
    pub command: Option<DoctorCommand>,

    /// The profile to judge against.
    #[arg(long, default_value = "training", value_parser = ["training", "inference"])]
    pub profile: String,

    /// Read the host from this directory or archive (.tar, .tar.gz, .tar.bz2) instead of `/`:
    /// a capture made with --capture, or a dump from hwloc-gather-topology.
    #[arg(long, value_name = "DIR|ARCHIVE")]
    pub root: Option<PathBuf>,

    /// Print JSON (schema in docs/doctor-json.md) instead of the report.
    #[arg(long)]
    pub json: bool,

    /// Run only these checks (ids as listed by --list; repeat or separate with commas).
    #[arg(long, value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,

    /// Show passed and informational checks in full.
    #[arg(short, long)]
    pub verbose: bool,

    /// Also write every file doctor reads into this .tar.gz, for a bug report or a fixture;
    /// `--root` reads it back.
    #[arg(long, value_name = "FILE.tar.gz")]
    pub capture: Option<PathBuf>,

    /// List the checks and exit.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Subcommand)]
pub enum DoctorCommand {
    /// Compare `osml doctor --json` reports of several hosts and show where they differ.
    ///
    /// For each check whose observed value is not the same on every host, prints host → value
    /// and marks the odd ones out (values fewer hosts share than the most common one). Exit
    /// status: 0 no difference, 1 differences, 2 usage or input error.
    Compare {
        /// Reports written by `osml doctor --json` (two or more).
        #[arg(required = true, num_args = 2.., value_name = "REPORT.json")]
        reports: Vec<PathBuf>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}
