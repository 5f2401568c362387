//! Counting the system calls of a process tree in the kernel with BPF ([`SyscallTally`]).
//!
//! Two small programs, assembled here:
//! - on the `sys_enter` raw tracepoint (every system call of every task): when the caller's
//!   process (thread group) is in the traced set, add one to its per-CPU count and to the
//!   per-CPU count of the call's number;
//! - on the `sched:sched_process_fork` tracepoint: when the forking process is traced, add
//!   the new task to the set, so children and threads are followed from their first call.
//!
//! The cost is a hash lookup on every system call of the host (~40 ns here) and two counter
//! increments on the traced ones; nothing is scheduled at context switches, unlike perf
//! counters (one per tracepoint per task, each switched in and out with it), and attaching
//! or detaching is one descriptor each, where closing hundreds of tracepoint counters waits
//! an RCU grace period apiece.
//!
//! Written over the `bpf(2)` system call rather than through a BPF crate: the two programs
//! are 28 and 24 instructions, and a crate that compiles programs would need a BPF toolchain
//! at build time. The instruction encoding and attribute layouts are the kernel's UAPI
//! (`include/uapi/linux/bpf.h`); the tracepoint's record layout (`child_pid`'s offset) comes
//! from its tracefs `format`, read by the caller.
//!
//! # Safety
//!
//! `bpf(2)` and `perf_event_open(2)` have no libc wrappers; they are called through
//! `syscall(2)` with attribute blocks laid out as the kernel's unions, each a local array that
//! outlives the call, holding pointers to buffers that outlive it too. Returned descriptors
//! are owned at once.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::SysError;

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_GET_NEXT_KEY: libc::c_int = 4;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_int = 17;
const BPF_MAP_LOOKUP_BATCH: libc::c_int = 24;

const BPF_MAP_TYPE_PERCPU_HASH: u32 = 5;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;

const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_MAP_UPDATE_ELEM: i32 = 2;
const HELPER_GET_CURRENT_PID_TGID: i32 = 14;
const BPF_NOEXIST: i32 = 1;
const BPF_F_NO_PREALLOC: u32 = 1;

/// Syscall-number slots: numbers 0 to `SLOTS - 2` each, and the last slot for every number
/// beyond (x32 and out-of-range calls).
pub const SLOTS: u32 = 1024;
/// The most processes and threads the traced set holds; tasks forked past it are not
/// counted.
pub const MAX_TASKS: u32 = 65536;

/// One BPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn op(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// `r_dst = map` (a 64-bit immediate naming a map descriptor: two instructions).
fn ld_map(dst: u8, map: RawFd) -> [Insn; 2] {
    [op(0x18, dst, 1, 0, map), op(0, 0, 0, 0, 0)]
}

const MOV64_REG: u8 = 0xbf;
const MOV64_IMM: u8 = 0xb7;
const ADD64_IMM: u8 = 0x07;
const RSH64_IMM: u8 = 0x77;
const LDX_DW: u8 = 0x79;
const LDX_W: u8 = 0x61;
const STX_W: u8 = 0x63;
const STX_DW: u8 = 0x7b;
const JEQ_IMM: u8 = 0x15;
const JLE_IMM: u8 = 0xb5;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

/// The start of both programs: `r6` = the context, then the calling process (thread group)
/// looked up in `procs`: `r0` is its per-CPU slot, or 0 when it is not traced; the key at
/// `r10 - 4`.
fn lookup_current_process(procs: RawFd) -> Vec<Insn> {
    let mut p = vec![
        op(MOV64_REG, 6, 1, 0, 0),                      // r6 = ctx
        op(CALL, 0, 0, 0, HELPER_GET_CURRENT_PID_TGID), // r0 = tgid << 32 | pid
        op(RSH64_IMM, 0, 0, 0, 32),                     // r0 = tgid
        op(STX_W, 10, 0, -4, 0),                        // key = tgid
        op(MOV64_REG, 2, 10, 0, 0),
        op(ADD64_IMM, 2, 0, 0, -4),
    ];
    p.extend(ld_map(1, procs));
    p.push(op(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM));
    p
}

/// `sys_enter` (raw tracepoint: `ctx` is `u64 args[2]`, the registers and the call's
/// number).
fn enter_program(procs: RawFd, by_nr: RawFd) -> Vec<Insn> {
    let mut p = lookup_current_process(procs);
    p.extend([
        op(JEQ_IMM, 0, 0, 16, 0), // not traced: exit
        op(LDX_DW, 1, 0, 0, 0),   // the process's count += 1
        op(ADD64_IMM, 1, 0, 0, 1),
        op(STX_DW, 0, 1, 0, 0),
        op(LDX_DW, 1, 6, 8, 0), // r1 = the call's number
        op(JLE_IMM, 1, 0, 1, i32::try_from(SLOTS - 2).unwrap_or(0)),
        op(MOV64_IMM, 1, 0, 0, i32::try_from(SLOTS - 1).unwrap_or(0)),
        op(STX_W, 10, 1, -8, 0),
        op(MOV64_REG, 2, 10, 0, 0),
        op(ADD64_IMM, 2, 0, 0, -8),
    ]);
    p.extend(ld_map(1, by_nr));
    p.extend([
        op(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM),
        op(JEQ_IMM, 0, 0, 3, 0),
        op(LDX_DW, 1, 0, 0, 0), // the number's count += 1
        op(ADD64_IMM, 1, 0, 0, 1),
        op(STX_DW, 0, 1, 0, 0),
        op(MOV64_IMM, 0, 0, 0, 0),
        op(EXIT, 0, 0, 0, 0),
    ]);
    p
}

/// `sched_process_fork` (tracepoint: `ctx` is the record; `child_pid` at `child_offset`).
fn fork_program(procs: RawFd, child_offset: i16) -> Vec<Insn> {
    let mut p = lookup_current_process(procs);
    p.extend([
        op(JEQ_IMM, 0, 0, 12, 0), // the parent is not traced: exit
        op(LDX_W, 1, 6, child_offset, 0),
        op(STX_W, 10, 1, -8, 0), // key = child
        op(MOV64_IMM, 1, 0, 0, 0),
        op(STX_DW, 10, 1, -16, 0), // value = 0
        op(MOV64_REG, 2, 10, 0, 0),
        op(ADD64_IMM, 2, 0, 0, -8),
        op(MOV64_REG, 3, 10, 0, 0),
        op(ADD64_IMM, 3, 0, 0, -16),
        op(MOV64_IMM, 4, 0, 0, BPF_NOEXIST),
    ]);
    p.extend(ld_map(1, procs));
    p.extend([
        op(CALL, 0, 0, 0, HELPER_MAP_UPDATE_ELEM),
        op(MOV64_IMM, 0, 0, 0, 0),
        op(EXIT, 0, 0, 0, 0),
    ]);
    p
}

fn error(call: &'static str) -> SysError {
    SysError::Call {
        call,
        path: None,
        error: std::io::Error::last_os_error(),
    }
}

/// `bpf(cmd, attr)`: the attribute block is `attr`, zero-padded as the kernel requires.
fn bpf(cmd: libc::c_int, attr: &mut [u8; 128], call: &'static str) -> Result<i64, SysError> {
    // SAFETY: `attr` is a live, writable 128-byte block laid out as `union bpf_attr` for
    // `cmd`; every pointer in it refers to a buffer the caller keeps alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        return Err(error(call));
    }
    Ok(r)
}

fn owned(fd: i64, call: &'static str) -> Result<OwnedFd, SysError> {
    let fd = RawFd::try_from(fd).map_err(|_| SysError::Call {
        call,
        path: None,
        error: std::io::Error::other("descriptor out of range"),
    })?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn put_u32(a: &mut [u8; 128], at: usize, v: u32) {
    a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(a: &mut [u8; 128], at: usize, v: u64) {
    a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// How a per-CPU map's values come back: `stride` values per key (one per possible CPU), in
/// buffers of `room` values per key (at least the stride, whatever the caller believed).
#[derive(Clone, Copy)]
struct PerCpu {
    stride: usize,
    room: usize,
}

/// A per-CPU map of u32 keys and u64 values.
struct Map {
    fd: OwnedFd,
    cpus: PerCpu,
}

impl Map {
    fn create(kind: u32, entries: u32, cpus: PerCpu) -> Result<Self, SysError> {
        let mut a = [0u8; 128];
        put_u32(&mut a, 0, kind);
        put_u32(&mut a, 4, 4);
        put_u32(&mut a, 8, 8);
        put_u32(&mut a, 12, entries);
        if kind == BPF_MAP_TYPE_PERCPU_HASH {
            // Elements allocated as they are added: preallocating 65,536 of them for every
            // CPU took 21 ms here, for a set that holds a job's few processes and threads.
            put_u32(&mut a, 16, BPF_F_NO_PREALLOC);
        }
        let fd = bpf(BPF_MAP_CREATE, &mut a, "bpf(BPF_MAP_CREATE)")?;
        Ok(Self {
            fd: owned(fd, "bpf(BPF_MAP_CREATE)")?,
            cpus,
        })
    }

    /// `map_fd, key, value` (or `next_key`), `flags`.
    fn elem_attr(&self, key: &u32, value: *mut u8, flags: u64) -> [u8; 128] {
        let mut a = [0u8; 128];
        put_u32(&mut a, 0, self.fd.as_raw_fd().cast_unsigned());
        put_u64(&mut a, 8, std::ptr::from_ref(key) as u64);
        put_u64(&mut a, 16, value as u64);
        put_u64(&mut a, 24, flags);
        a
    }

    /// Sets `key`'s value to 0 on every CPU.
    fn insert_zero(&self, key: u32) -> Result<(), SysError> {
        let mut values = vec![0u64; self.cpus.room];
        let mut a = self.elem_attr(&key, values.as_mut_ptr().cast(), 0);
        bpf(BPF_MAP_UPDATE_ELEM, &mut a, "bpf(BPF_MAP_UPDATE_ELEM)").map(drop)
    }

    /// The sum over CPUs of `key`'s value; `None` when absent.
    fn sum(&self, key: u32) -> Option<u64> {
        let mut values = vec![0u64; self.cpus.room];
        let mut a = self.elem_attr(&key, values.as_mut_ptr().cast(), 0);
        bpf(BPF_MAP_LOOKUP_ELEM, &mut a, "bpf(BPF_MAP_LOOKUP_ELEM)").ok()?;
        Some(values.iter().sum())
    }

    /// The sums over CPUs of keys `0..n` of an array map, in one call
    /// (`BPF_MAP_LOOKUP_BATCH`, 5.6+; one lookup per key costs ~25 µs here, 26 ms for the
    /// 1,024 slots), or key by key where the kernel has no batch lookup.
    fn sums(&self, n: u32) -> Vec<u64> {
        let count = n as usize;
        let mut keys = vec![0u32; count];
        let mut values = vec![0u64; count * self.cpus.room];
        let mut out_batch = 0u32;
        let mut a = [0u8; 128];
        // in_batch (NULL: from the start), out_batch, keys, values, count, map_fd.
        put_u64(&mut a, 8, std::ptr::from_mut(&mut out_batch) as u64);
        put_u64(&mut a, 16, keys.as_mut_ptr() as u64);
        put_u64(&mut a, 24, values.as_mut_ptr() as u64);
        put_u32(&mut a, 32, n);
        put_u32(&mut a, 36, self.fd.as_raw_fd().cast_unsigned());
        let batched = bpf(BPF_MAP_LOOKUP_BATCH, &mut a, "bpf(BPF_MAP_LOOKUP_BATCH)");
        // ENOENT with every element read is the batch's normal end.
        let done = u32::from_ne_bytes([a[32], a[33], a[34], a[35]]) as usize;
        if batched.is_ok() || done == count {
            let mut out = vec![0u64; count];
            for (i, key) in keys.iter().take(done.min(count)).enumerate() {
                if let Some(slot) = out.get_mut(*key as usize) {
                    let at = i * self.cpus.stride;
                    *slot = values[at..at + self.cpus.stride].iter().sum();
                }
            }
            return out;
        }
        (0..n).map(|k| self.sum(k).unwrap_or(0)).collect()
    }

    /// Every key of a hash map (at most [`MAX_TASKS`]).
    fn keys(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut prev: Option<u32> = None;
        while out.len() < MAX_TASKS as usize {
            let mut next = 0u32;
            let mut a = [0u8; 128];
            put_u32(&mut a, 0, self.fd.as_raw_fd().cast_unsigned());
            // No key (NULL) asks for the first one.
            if let Some(p) = &prev {
                put_u64(&mut a, 8, std::ptr::from_ref(p) as u64);
            }
            put_u64(&mut a, 16, std::ptr::from_mut(&mut next) as u64);
            // ENOENT after the last key.
            if bpf(BPF_MAP_GET_NEXT_KEY, &mut a, "bpf(BPF_MAP_GET_NEXT_KEY)").is_err() {
                break;
            }
            out.push(next);
            prev = Some(next);
        }
        out
    }
}

/// Why the programs could not be loaded or attached.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("{0}")]
    Sys(#[from] SysError),
    /// The verifier refused a program; its log, last lines first.
    #[error("the kernel refused osml's {program} program: {log}")]
    Refused { program: &'static str, log: String },
}

fn load(kind: u32, insns: &[Insn], program: &'static str) -> Result<OwnedFd, BpfError> {
    let raw: Vec<u64> = insns
        .iter()
        .map(|i| {
            u64::from(i.code)
                | u64::from(i.regs) << 8
                | u64::from(i.off.cast_unsigned()) << 16
                | u64::from(i.imm.cast_unsigned()) << 32
        })
        .collect();
    let license = b"GPL\0";
    let mut log = vec![0u8; 1 << 16];
    let mut a = [0u8; 128];
    put_u32(&mut a, 0, kind);
    put_u32(&mut a, 4, u32::try_from(raw.len()).unwrap_or(u32::MAX));
    put_u64(&mut a, 8, raw.as_ptr() as u64);
    put_u64(&mut a, 16, license.as_ptr() as u64);
    put_u32(&mut a, 24, 1); // log_level
    put_u32(&mut a, 28, u32::try_from(log.len()).unwrap_or(0));
    put_u64(&mut a, 32, log.as_mut_ptr() as u64);
    match bpf(BPF_PROG_LOAD, &mut a, "bpf(BPF_PROG_LOAD)") {
        Ok(fd) => Ok(owned(fd, "bpf(BPF_PROG_LOAD)")?),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            if text.trim().is_empty() {
                return Err(e.into());
            }
            let tail: Vec<&str> = text.lines().rev().take(4).collect();
            Err(BpfError::Refused {
                program,
                log: tail.join(" | "),
            })
        }
    }
}

/// The system calls of a set of processes and of everything they start, by number and by
/// process, counted in the kernel. Counting starts at [`SyscallTally::add`] and stops when
/// the value is dropped (its descriptors closed: one each, no wait).
pub struct SyscallTally {
    procs: Map,
    by_nr: Map,
    /// The raw tracepoint link, the fork event and the two programs: closed by a helper
    /// process at drop (`crate::close_fds_in_background`), since the last close of a
    /// tracepoint's attachment waits for an RCU grace period (74 ms measured here).
    attached: Vec<OwnedFd>,
}

impl Drop for SyscallTally {
    fn drop(&mut self) {
        crate::close_fds_in_background(std::mem::take(&mut self.attached));
    }
}

impl SyscallTally {
    /// Loads and attaches the programs. `fork_tracepoint` is the id of
    /// `sched:sched_process_fork` and `child_pid_offset` the offset of its `child_pid` field
    /// (both from tracefs); `cpus` the number of possible CPUs as the caller read it
    /// (`/sys/devices/system/cpu/possible`). Needs `CAP_BPF` and `CAP_PERFMON` (or root).
    pub fn open(
        fork_tracepoint: u64,
        child_pid_offset: u16,
        cpus: usize,
    ) -> Result<Self, BpfError> {
        // The kernel copies one value per possible CPU into a lookup's buffer: a buffer sized
        // for fewer would be written past its end. The live count is read here, whatever the
        // caller passed, and the larger of the two is used.
        let (count, bound) = possible_cpus()?;
        let layout = PerCpu {
            stride: count,
            room: cpus.max(bound).max(count),
        };
        let procs = Map::create(BPF_MAP_TYPE_PERCPU_HASH, MAX_TASKS, layout)?;
        let by_nr = Map::create(BPF_MAP_TYPE_PERCPU_ARRAY, SLOTS, layout)?;
        let offset = i16::try_from(child_pid_offset).map_err(|_| BpfError::Refused {
            program: "fork",
            log: format!("child_pid offset {child_pid_offset} out of range"),
        })?;
        let fork = load(
            BPF_PROG_TYPE_TRACEPOINT,
            &fork_program(procs.fd.as_raw_fd(), offset),
            "fork",
        )?;
        let enter = load(
            BPF_PROG_TYPE_RAW_TRACEPOINT,
            &enter_program(procs.fd.as_raw_fd(), by_nr.fd.as_raw_fd()),
            "sys_enter",
        )?;
        let fork_event = attach_tracepoint(fork_tracepoint, &fork)?;
        let name = b"sys_enter\0";
        let mut a = [0u8; 128];
        put_u64(&mut a, 0, name.as_ptr() as u64);
        put_u32(&mut a, 8, enter.as_raw_fd().cast_unsigned());
        let link = bpf(
            BPF_RAW_TRACEPOINT_OPEN,
            &mut a,
            "bpf(BPF_RAW_TRACEPOINT_OPEN)",
        )?;
        let link = owned(link, "bpf(BPF_RAW_TRACEPOINT_OPEN)")?;
        Ok(Self {
            procs,
            by_nr,
            attached: vec![link, fork_event, enter, fork],
        })
    }

    /// Counts process (thread group) `tgid` from now on, and what it starts afterwards.
    /// Adding one already counted changes nothing.
    pub fn add(&self, tgid: i32) -> Result<(), SysError> {
        if self.contains(tgid) {
            return Ok(());
        }
        self.procs.insert_zero(tgid.cast_unsigned())
    }

    /// Whether `tgid` is counted (added, or started by a counted process).
    pub fn contains(&self, tgid: i32) -> bool {
        self.procs.sum(tgid.cast_unsigned()).is_some()
    }

    /// Calls by number (the last slot, [`SLOTS`] - 1, holds every number beyond), non-zero
    /// only.
    pub fn by_number(&self) -> Vec<(u32, u64)> {
        (0..SLOTS)
            .zip(self.by_nr.sums(SLOTS))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// Calls by process: every task in the set (threads appear with their own id and no
    /// calls, which are counted under their process), non-zero only.
    pub fn by_process(&self) -> Vec<(i32, u64)> {
        self.procs
            .keys()
            .into_iter()
            .filter_map(|k| {
                self.procs
                    .sum(k)
                    .filter(|&n| n > 0)
                    .map(|n| (k.cast_signed(), n))
            })
            .collect()
    }
}

/// The possible CPUs (`/sys/devices/system/cpu/possible`, `0-N` or a list): how many (the
/// kernel's `num_possible_cpus()`, the number of values a per-CPU map's lookup returns per
/// key), and one past the highest.
fn possible_cpus() -> Result<(usize, usize), SysError> {
    let path = std::path::Path::new("/sys/devices/system/cpu/possible");
    let text = crate::file::read_bounded(path, 4096).map_err(|error| SysError::Call {
        call: "read",
        path: Some(path.to_path_buf()),
        error,
    })?;
    let text = String::from_utf8_lossy(&text);
    cpu_count(&text).ok_or_else(|| SysError::Call {
        call: "read",
        path: Some(path.to_path_buf()),
        error: std::io::Error::other(format!("{text:?} is not a CPU list")),
    })
}

/// (how many, one past the highest) of a CPU list such as `0-3,8-11`.
fn cpu_count(text: &str) -> Option<(usize, usize)> {
    let (mut count, mut bound) = (0usize, 0usize);
    for range in text.trim().split(',') {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let (lo, hi) = (
            lo.trim().parse::<usize>().ok()?,
            hi.trim().parse::<usize>().ok()?,
        );
        if hi < lo || hi >= 1 << 20 {
            return None;
        }
        count += hi - lo + 1;
        bound = bound.max(hi + 1);
    }
    (count > 0).then_some((count, bound))
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// A perf event on a tracepoint (any process, CPU 0: a program attached to a tracepoint's
/// event runs wherever the tracepoint fires) with `prog` attached.
fn attach_tracepoint(id: u64, prog: &OwnedFd) -> Result<OwnedFd, BpfError> {
    // struct perf_event_attr, version 0 (64 bytes): type, size, config, sample_period = 1.
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&PERF_TYPE_TRACEPOINT.to_ne_bytes());
    attr[4..8].copy_from_slice(&64u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&id.to_ne_bytes());
    attr[16..24].copy_from_slice(&1u64.to_ne_bytes());
    // SAFETY: `attr` is a valid version-0 perf_event_attr for the duration of the call; pid
    // -1 with cpu 0 is every task on that CPU, group -1 none.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(error("perf_event_open").into());
    }
    let event = owned(fd, "perf_event_open")?;
    // SAFETY: both descriptors are open and owned; the ioctls take an int argument.
    let set = unsafe { libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) };
    if set < 0 {
        return Err(error("ioctl(PERF_EVENT_IOC_SET_BPF)").into());
    }
    // SAFETY: as above.
    if unsafe { libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) } < 0 {
        return Err(error("ioctl(PERF_EVENT_IOC_ENABLE)").into());
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_skip::skip;

    /// `sched_process_fork`'s id and `child_pid` offset from tracefs (mounted when missing and
    /// root), or why not.
    fn fork_tracepoint() -> Result<(u64, u16), String> {
        let dir = "/sys/kernel/tracing/events/sched/sched_process_fork";
        if !std::path::Path::new(dir).exists() && rustix::process::geteuid().is_root() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
                .status();
        }
        #[allow(clippy::disallowed_methods)] // a test probing the machine, not host facts
        let read = |f: &str| {
            std::fs::read_to_string(format!("{dir}/{f}")).map_err(|e| format!("no {dir}/{f} ({e})"))
        };
        let id = read("id")?.trim().parse().map_err(|e| format!("id: {e}"))?;
        let format = read("format")?;
        let offset = format
            .lines()
            .find(|l| l.contains(" child_pid;"))
            .and_then(|l| l.split("offset:").nth(1))
            .and_then(|r| r.split(';').next())
            .and_then(|n| n.parse().ok())
            .ok_or("no child_pid field in the format")?;
        Ok((id, offset))
    }

    fn possible_cpus() -> usize {
        #[allow(clippy::disallowed_methods)] // a test probing the machine, not host facts
        let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
        // "0-N" or "0": the count is the last id + 1.
        text.trim()
            .rsplit(['-', ','])
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(1, |n| n + 1)
    }

    /// Forks a child that waits for a byte on a pipe, then makes `n` getppid calls, forks a
    /// grandchild that makes `m`, waits for it and exits.
    fn child(calls: usize, grandchild_calls: usize) -> (i32, OwnedFd) {
        let (wait_end, go_end) = rustix::pipe::pipe().unwrap();
        // SAFETY: the child only makes async-signal-safe system calls and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut byte = [0u8; 1];
            let _ = rustix::io::read(&wait_end, &mut byte);
            for _ in 0..calls {
                // SAFETY: getppid takes no argument.
                unsafe { libc::syscall(libc::SYS_getppid) };
            }
            // SAFETY: as above, in the grandchild too.
            let grandchild = unsafe { libc::fork() };
            if grandchild == 0 {
                for _ in 0..grandchild_calls {
                    // SAFETY: as above.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                // SAFETY: ends the grandchild without running the test harness's handlers.
                unsafe { libc::_exit(0) };
            }
            // SAFETY: waits for the grandchild; then ends the child.
            unsafe {
                libc::waitpid(grandchild, std::ptr::null_mut(), 0);
                libc::_exit(0)
            };
        }
        drop(wait_end);
        (pid, go_end)
    }

    #[test]
    fn every_jump_lands_on_an_instruction_of_its_program() {
        for (program, len) in [(enter_program(3, 4), 28), (fork_program(3, 20), 24)] {
            assert_eq!(program.len(), len);
            for (i, insn) in program.iter().enumerate() {
                if matches!(insn.code, JEQ_IMM | JLE_IMM) {
                    let target = i64::try_from(i).unwrap() + 1 + i64::from(insn.off);
                    let target = usize::try_from(target).unwrap();
                    assert!(target < program.len(), "jump at {i} to {target}");
                    // The second half of a 64-bit immediate is not an instruction.
                    assert!(target == 0 || program[target - 1].code != 0x18, "{i}");
                }
            }
            let last = program[program.len() - 1];
            assert_eq!(last.code, EXIT);
            // Every exit returns 0: the instruction before it sets r0.
            assert_eq!(program[program.len() - 2].code, MOV64_IMM);
        }
    }

    #[test]
    fn possible_cpu_lists() {
        assert_eq!(cpu_count("0-1\n"), Some((2, 2)));
        assert_eq!(cpu_count("0"), Some((1, 1)));
        assert_eq!(cpu_count("0-3,8-11"), Some((8, 12)));
        for junk in ["", "x", "3-1", "0-99999999", "1,,2"] {
            assert_eq!(cpu_count(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn counts_a_tree_exactly_by_number_and_by_process() {
        const TEST: &str = "bpf::tests::counts_a_tree_exactly_by_number_and_by_process";
        let (id, offset) = match fork_tracepoint() {
            Ok(t) => t,
            Err(why) => return skip(TEST, &why),
        };
        let tally = match SyscallTally::open(id, offset, possible_cpus()) {
            Ok(t) => t,
            Err(e) if !rustix::process::geteuid().is_root() => {
                return skip(
                    TEST,
                    &format!("{e} (needs root, or CAP_BPF and CAP_PERFMON)"),
                )
            }
            Err(e) => panic!("{e}"),
        };
        let (pid, go) = child(10_000, 2_500);
        tally.add(pid).unwrap();
        tally.add(pid).unwrap(); // twice changes nothing
        rustix::io::write(&go, b"x").unwrap();
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        let getppid = u32::try_from(libc::SYS_getppid).unwrap();
        let by_nr = tally.by_number();
        let n = by_nr
            .iter()
            .find(|(nr, _)| *nr == getppid)
            .map_or(0, |e| e.1);
        assert_eq!(n, 12_500, "the child's and the grandchild's, nobody else's");
        let by_proc = tally.by_process();
        let mine = by_proc.iter().find(|(p, _)| *p == pid).map_or(0, |e| e.1);
        assert!((10_000..10_100).contains(&mine), "{by_proc:?}");
        let grandchild: Vec<_> = by_proc.iter().filter(|(p, _)| *p != pid).collect();
        assert_eq!(grandchild.len(), 1, "{by_proc:?}");
        assert!((2_500..2_600).contains(&grandchild[0].1), "{by_proc:?}");
        let total: u64 = by_nr.iter().map(|e| e.1).sum();
        assert_eq!(total, by_proc.iter().map(|e| e.1).sum::<u64>());
    }
}
