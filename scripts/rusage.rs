//! `rusage OUT CMD...`: runs CMD and writes to OUT its own getrusage (wait4) as
//! "user_seconds system_seconds peak_rss_kib", to the microsecond; exits with CMD's status.
//! Built by scripts/bench-lib.sh with plain rustc. A launcher this small matters: a child
//! forked from a large process (Python) keeps that process's peak RSS across exec.
use std::process::{exit, Command};

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    maxrss: i64,
    rest: [i64; 13],
}

extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, usage: *mut Rusage) -> i32;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, cmd, rest @ ..] = args.as_slice() else {
        eprintln!("usage: rusage OUT CMD...");
        exit(2);
    };
    let child = Command::new(cmd).args(rest).spawn().unwrap_or_else(|e| {
        eprintln!("rusage: cannot run {cmd}: {e}");
        exit(127)
    });
    let mut status = 0;
    let mut u: Rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes the status and a struct rusage, which `Rusage` lays out for
    // x86_64 and aarch64 Linux.
    if unsafe { wait4(child.id() as i32, &mut status, 0, &mut u) } < 0 {
        eprintln!("rusage: wait4 failed");
        exit(1);
    }
    let secs = |t: &Timeval| t.sec as f64 + t.usec as f64 / 1e6;
    let line = format!("{:.6} {:.6} {}\n", secs(&u.utime), secs(&u.stime), u.maxrss);
    std::fs::write(out, line).expect("rusage: cannot write OUT");
    let code = if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) };
    exit(code);
}
