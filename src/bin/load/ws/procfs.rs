//! What /proc tells about a process: its open-file limit, memory, CPU
//! time, and the store writer thread's scheduling.

use serde::Serialize;

/// The open-file limit of this process (soft, hard), from /proc.
pub(super) fn open_file_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?))
}

#[derive(Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Memory {
    pub(super) rss_kib: u64,
    pub(super) anon_kib: u64,
}

/// A process's resident memory, from /proc/<pid>/status.
pub(super) fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some(Memory {
        rss_kib: kib("VmRSS:")?,
        anon_kib: kib("RssAnon:").unwrap_or(0),
    })
}

/// Nanoseconds of CPU a process used, ended threads included (utime and
/// stime from /proc/<pid>/stat, in clock ticks of 10 ms: USER_HZ is 100
/// on Linux).
pub(super) fn cpu_nanos(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is the
    // first, utime the 12th, stime the 13th.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10_000_000)
}

/// The store's writer thread (it names itself so): nanoseconds on a CPU
/// and waiting for one. In-process servers only.
pub(super) fn writer_sched() -> Option<(u64, u64)> {
    let mut found = None;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(task) = task else { continue };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "mychat-writer" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok());
        found = Some((fields.next()??, fields.next()??));
    }
    found
}
