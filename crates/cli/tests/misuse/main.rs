//! osml misused as a new user or an attacker would: FIFOs and devices where files belong,
//! compression bombs, signals mid-command, hostile strings. Each case failed before its fix.

mod host;
