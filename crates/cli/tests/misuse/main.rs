//! The misuse suite: every command driven the way a careless user or an attacker would drive
//! it (FIFOs and devices where files belong, bombs, concurrent runs, signals, closed pipes,
//! hostile strings), each case failing on a real defect.

// Helpers of an integration test panic on purpose; fixtures are read directly.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod pipes;
