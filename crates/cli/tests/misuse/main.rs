//! The misuse suite: every command driven the way a careless user or an attacker would drive
//! it (FIFOs and devices where files belong, corrupt and hostile input, bombs, concurrent
//! runs, signals mid-write, odd umasks, closed pipes, hostile strings, absurd durations), each
//! case failing on a real defect of the code before its fix.

// Helpers of an integration test panic on purpose; fixtures are read directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "../support/mod.rs"]
mod support;

mod affinity;
mod bench;
mod data;
mod host;
mod messages;
mod names;
mod outputs;
mod pipes;
mod trace;
mod tune;
