//! How much memory the process holds, and the high-water mark above which
//! it takes no new sockets: under a memory limit (a systemd `MemoryMax=`,
//! a container) the kernel kills a process that reaches it, so new
//! sockets are refused well before.
//!
//! The mark is `limits.memory_high_mb`, or, when that is 0, the memory
//! limit of the process's cgroup (v2 `memory.max`, v1
//! `memory.limit_in_bytes`) less a headroom of a quarter of it, at least
//! [`MIN_HEADROOM`] (at most half); without either there is none. The
//! headroom is for work in flight that does not come with a socket: the
//! search indexer's writer memory while it holds uncommitted documents
//! (~15 MB), a password hash (19 MiB each; [`hash_permits`] bounds how
//! many run at once), the kernel's memory for sockets and files.
//!
//! What is measured against the mark is the process's anonymous memory
//! plus the kernel memory its cgroup is charged (socket buffers, slabs):
//! both count toward the limit, and neither can be dropped and read back
//! like the pages of files.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The least headroom between the mark and the cgroup's limit.
pub const MIN_HEADROOM: u64 = 40 * 1024 * 1024;
/// What one password hash holds while it runs (argon2id's default cost).
pub const HASH_BYTES: u64 = 19 * 1024 * 1024;
/// What the search indexer's writer may hold between its commits.
pub const INDEXER_BYTES: u64 = 16 * 1024 * 1024;

/// The process's anonymous resident memory (heap, stacks), in bytes,
/// from /proc/self/status: what it holds that the kernel cannot drop and
/// read back, unlike the pages of the program's own file.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The anonymous memory plus the kernel memory the process's cgroup is
/// charged: what is measured against the mark.
pub fn used_bytes() -> Option<u64> {
    Some(rss_bytes()? + cgroup_kernel_bytes())
}

/// The kernel memory charged to this process's cgroup (v2: `kernel` and
/// `sock` of `memory.stat`; v1: `memory.kmem.usage_in_bytes`), 0 when
/// the cgroup does not say. The file is found once.
pub fn cgroup_kernel_bytes() -> u64 {
    static FILE: OnceLock<Option<(PathBuf, bool)>> = OnceLock::new();
    let Some((file, v2)) = FILE.get_or_init(kernel_file) else {
        return 0;
    };
    let Ok(text) = std::fs::read_to_string(file) else {
        return 0;
    };
    if !v2 {
        return text.trim().parse().unwrap_or(0);
    }
    text.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(' ')?;
            matches!(key, "kernel" | "sock").then(|| value.trim().parse::<u64>().ok())?
        })
        .sum()
}

fn kernel_file() -> Option<(PathBuf, bool)> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let (file, v2) = if id == "0" && controllers.is_empty() {
            (format!("/sys/fs/cgroup/{path}/memory.stat"), true)
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                format!("/sys/fs/cgroup/memory/{path}/memory.kmem.usage_in_bytes"),
                false,
            )
        } else {
            continue;
        };
        let file = PathBuf::from(file.replace("//", "/"));
        if file.exists() {
            return Some((file, v2));
        }
    }
    None
}

/// The memory limit of this process's cgroup, if it has one.
pub fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut limit = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let file = if id == "0" && controllers.is_empty() {
            format!("/sys/fs/cgroup/{path}/memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory/{path}/memory.limit_in_bytes")
        } else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(file.replace("//", "/")) else {
            continue;
        };
        // "max" (v2) or a huge number (v1) mean no limit.
        if let Ok(n) = text.trim().parse::<u64>()
            && n < (1 << 60)
        {
            limit = Some(limit.map_or(n, |l: u64| l.min(n)));
        }
    }
    limit
}

/// The high-water mark in bytes: the configured one, else the cgroup's
/// limit less its headroom; 0 when there is none.
pub fn high_mark(configured_mb: u64) -> u64 {
    if configured_mb > 0 {
        return configured_mb.saturating_mul(1024 * 1024);
    }
    cgroup_limit().map_or(0, mark_under)
}

/// The mark under a limit of `limit` bytes.
pub fn mark_under(limit: u64) -> u64 {
    limit - headroom(limit)
}

fn headroom(limit: u64) -> u64 {
    (limit / 4).max(MIN_HEADROOM).min(limit / 2)
}

/// How many password hashes may run at once: one per core, fewer when the
/// headroom under a memory limit holds fewer (at least one).
pub fn hash_permits(cores: usize) -> usize {
    match cgroup_limit() {
        Some(limit) => {
            let room = headroom(limit).saturating_sub(INDEXER_BYTES) / HASH_BYTES;
            (room as usize).clamp(1, cores.max(1))
        }
        None => cores.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_knows_its_memory() {
        assert!(rss_bytes().unwrap() > 1024 * 1024);
        assert_eq!(high_mark(64), 64 * 1024 * 1024);
    }

    #[test]
    fn the_headroom_is_a_quarter_but_never_too_little_for_work_in_flight() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(mark_under(1024 * MIB), 768 * MIB);
        assert_eq!(mark_under(128 * MIB), 88 * MIB);
        assert_eq!(mark_under(64 * MIB), 32 * MIB);
        assert_eq!(mark_under(16 * MIB), 8 * MIB);
    }
}
