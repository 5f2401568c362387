//! Misuse of every command: FIFOs and devices where files belong, corrupt and hostile input,
//! signals mid-write, odd umasks. Each case failed on the code before its fix.

mod data;
