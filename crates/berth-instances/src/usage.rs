//! What instances use of the machine, read from Linux's `/proc`: CPU time and resident memory
//! of every process in an instance's process group (a worker and whatever it started), the
//! machine's memory, and the space used on a file system.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// One process group's use at one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupUsage {
    /// CPU used since the previous reading, in percent of one core (up to 100 × cores); None
    /// at the first reading of a group.
    pub cpu_percent: Option<f64>,
    /// Resident memory of the group's processes.
    pub rss_bytes: u64,
}

/// Reads process groups' CPU and memory; keeps each group's previous CPU time to turn totals
/// into rates.
pub struct UsageProbe {
    ticks_per_second: f64,
    page_size: u64,
    previous: HashMap<u32, (u64, Instant)>,
}

impl Default for UsageProbe {
    fn default() -> Self {
        // SAFETY: sysconf has no memory-safety preconditions.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        UsageProbe {
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: if page > 0 { page as u64 } else { 4096 },
            previous: HashMap::new(),
        }
    }
}

impl UsageProbe {
    /// Reads every process once and answers for the asked process groups (by group id).
    pub fn measure(&mut self, groups: &[u32]) -> HashMap<u32, GroupUsage> {
        if groups.is_empty() {
            self.previous.clear();
            return HashMap::new();
        }
        let now = Instant::now();
        let mut totals: HashMap<u32, (u64, u64)> = groups.iter().map(|&g| (g, (0, 0))).collect();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
                let Some((group, ticks, rss_pages)) = parse_stat(&stat) else { continue };
                if let Some(t) = totals.get_mut(&group) {
                    t.0 += ticks;
                    t.1 += rss_pages;
                }
            }
        }
        let mut out = HashMap::new();
        let mut seen = HashMap::new();
        for (group, (ticks, rss_pages)) in totals {
            if rss_pages == 0 && ticks == 0 {
                continue; // no such group (any more)
            }
            let cpu_percent = self.previous.get(&group).and_then(|&(before, at)| {
                let wall = now.duration_since(at).as_secs_f64();
                (wall > 0.0).then(|| ticks.saturating_sub(before) as f64 / self.ticks_per_second / wall * 100.0)
            });
            out.insert(group, GroupUsage { cpu_percent, rss_bytes: rss_pages * self.page_size });
            seen.insert(group, (ticks, now));
        }
        self.previous = seen;
        out
    }
}

/// (process group, user + system CPU ticks, resident pages) from a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(u32, u64, u64)> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name start at field 3 (state): pgrp is field 5, utime 14, stime 15, rss 24.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let group = u32::try_from(field(5)?).ok()?;
    Some((group, field(14)? + field(15)?, field(24)?))
}

/// The machine's memory (`MemTotal` of `/proc/meminfo`).
pub fn host_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Percent of the file system holding `path` that is used, as `df` counts it.
pub fn disk_used_percent(path: &Path) -> Option<f64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is plain data, for which all zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes into the struct we pass; the path is a valid C string.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let used = (st.f_blocks - st.f_bfree) as f64;
    let usable = used + st.f_bavail as f64;
    (usable > 0.0).then(|| used / usable * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        let line = "4242 (my (odd) worker) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 123 1000000 250 18446744073709551615";
        assert_eq!(parse_stat(line), Some((4242, 10, 250)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_busy_process_group_shows_cpu_and_memory() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).process_group(0).spawn().unwrap();
        let group = child.id();
        // Just after spawn the shell may still be exec'ing, with nothing to read yet: a fresh
        // probe for each try, so the reading asserted on is a probe's first.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let (mut probe, first) = loop {
            let mut probe = UsageProbe::default();
            let first = probe.measure(&[group]);
            if first.contains_key(&group) || std::time::Instant::now() > deadline {
                break (probe, first);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(first[&group].cpu_percent, None, "no rate at the first reading");
        assert!(first[&group].rss_bytes > 0);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let second = probe.measure(&[group]);
        let _ = child.kill();
        let _ = child.wait();
        let cpu = second[&group].cpu_percent.unwrap();
        assert!(cpu > 20.0 && cpu < 250.0, "a spinning shell uses about one core, got {cpu}");
        assert!(probe.measure(&[group]).is_empty(), "a gone group is not reported");
        assert!(host_memory_bytes().unwrap() > 0);
        let disk = disk_used_percent(Path::new("/")).unwrap();
        assert!((0.0..=100.0).contains(&disk));
    }
}
