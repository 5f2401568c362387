//! Misuse: every command driven the way a new user or an attacker would, one module per area.

mod affinity;
mod bench;
mod trace;
mod tune;
