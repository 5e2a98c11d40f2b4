//! How much memory the process holds, and the high-water mark above which
//! it takes no new sockets: under a memory limit (a systemd `MemoryMax=`,
//! a container) the kernel kills a process that reaches it, so new
//! sockets are refused well before.
//!
//! The mark is `limits.memory_high_mb`, or, when that is 0, three quarters
//! of the memory limit of the process's cgroup (v2 `memory.max`, v1
//! `memory.limit_in_bytes`); without either there is none.

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

/// The high-water mark in bytes: the configured one, else three quarters
/// of the cgroup's limit; 0 when there is none.
pub fn high_mark(configured_mb: u64) -> u64 {
    if configured_mb > 0 {
        return configured_mb.saturating_mul(1024 * 1024);
    }
    cgroup_limit().map_or(0, |limit| limit / 4 * 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_knows_its_memory() {
        assert!(rss_bytes().unwrap() > 1024 * 1024);
        assert_eq!(high_mark(64), 64 * 1024 * 1024);
    }
}
