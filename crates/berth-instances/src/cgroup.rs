//! Memory limits of instances through the kernel's memory cgroup controller.
//!
//! Where berth may create cgroups (cgroup v2 with the memory controller delegated to berth's
//! cgroup, or cgroup v1's memory hierarchy, writable for root), each instance runs in a cgroup
//! of its own under `<berth's cgroup>/berth-<pid>/`, limited to its instance type's (or
//! serverless variant's) memory: an instance that goes past it is killed by the kernel, and its
//! supervisor says so. Elsewhere limits are only reported (MemoryUtilization).

use crate::error::HostError;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The cgroup under which berth puts its instances' cgroups.
#[derive(Debug)]
pub struct MemoryCgroups {
    version: Version,
    base: PathBuf,
}

impl MemoryCgroups {
    /// Finds berth's own memory cgroup and creates `berth-<pid>` under it, or says why instances
    /// cannot be limited here. Leftovers of berth processes that are gone are removed.
    pub fn detect() -> Result<MemoryCgroups, HostError> {
        Self::find().map_err(HostError)
    }

    fn find() -> Result<MemoryCgroups, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let (version, dir) =
            own_memory_cgroup(&own, &mounts).ok_or_else(|| "no memory cgroup controller is mounted for berth's cgroup".to_string())?;
        if version == Version::V2 {
            enable_v2_memory(&dir)?;
        }
        remove_stale(&dir, version);
        let base = dir.join(format!("berth-{}", std::process::id()));
        make_cgroup(&base)?;
        if version == Version::V2 {
            // The instances' cgroups are children of `base`: the controller goes one level down.
            if let Err(e) = enable_v2_memory(&base) {
                let _ = std::fs::remove_dir(&base);
                return Err(e);
            }
        }
        Ok(MemoryCgroups { version, base })
    }

    /// What limits instances, for berth's start-up log.
    pub fn describe(&self) -> String {
        let v = match self.version {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        };
        format!("{v} under {}", self.base.display())
    }

    /// A cgroup for one instance, limited to `limit_bytes` (swap included where the kernel
    /// accounts for it). Its processes join it as they start ([`InstanceCgroup::procs_file`]).
    pub(crate) fn create(&self, instance_id: &str, limit_bytes: u64) -> Result<InstanceCgroup, String> {
        let name: String = instance_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '.' }).collect();
        let dir = self.base.join(name);
        make_cgroup(&dir)?;
        let (limit_file, swap_file, swap_value) = match self.version {
            Version::V1 => ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", limit_bytes),
            Version::V2 => ("memory.max", "memory.swap.max", 0),
        };
        std::fs::write(dir.join(limit_file), limit_bytes.to_string())
            .map_err(|e| format!("cannot set {} of {}: {e}", limit_file, dir.display()))?;
        // Only where the kernel accounts for swap; without it, swap stays outside the limit.
        let _ = std::fs::write(dir.join(swap_file), swap_value.to_string());
        let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(|_| format!("cgroup path {} has a NUL byte", dir.display()))?;
        Ok(InstanceCgroup { version: self.version, dir, procs, limit_bytes })
    }

    /// Removes berth's cgroup once its instances have stopped (at shutdown). What a `kill -9`
    /// leaves is removed by the next start.
    pub fn remove(&self) {
        remove_dir_patiently(&self.base);
    }
}

/// One instance's memory cgroup; removed when dropped (once its processes are gone).
#[derive(Debug)]
pub struct InstanceCgroup {
    version: Version,
    dir: PathBuf,
    procs: CString,
    limit_bytes: u64,
}

impl InstanceCgroup {
    /// The file a starting process writes its pid to (in the child, before exec).
    pub fn procs_file(&self) -> &std::ffi::CStr {
        &self.procs
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// How many processes the kernel has killed in this cgroup for going past its limit.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        std::fs::read_to_string(self.dir.join(file)).ok().and_then(|text| flat_keyed(&text, "oom_kill")).unwrap_or(0)
    }
}

impl InstanceCgroup {
    /// Kills every process in the cgroup, wherever it moved in the process tree (a helper that
    /// left its session included): `cgroup.kill` on v2, each pid of `cgroup.procs` on v1.
    pub fn kill_all(&self) {
        kill_cgroup(&self.dir, self.version);
    }
}

fn kill_cgroup(dir: &Path, version: Version) {
    if version == Version::V2 && std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    // New processes may fork while their siblings are killed: repeat until none is left.
    for _ in 0..20 {
        let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else { return };
        let pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Drop for InstanceCgroup {
    fn drop(&mut self) {
        remove_dir_patiently(&self.dir);
    }
}

/// Writes the calling process's pid to `procs` with async-signal-safe calls only, so it can run
/// in a forked child before exec.
pub(crate) fn join_in_child(procs: &std::ffi::CStr) -> std::io::Result<()> {
    let mut digits = [0u8; 20];
    // SAFETY: getpid, open, write and close are async-signal-safe; the buffers outlive the calls.
    unsafe {
        let mut pid = libc::getpid() as u64;
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let len = digits.len() - at;
        let written = libc::write(fd, digits[at..].as_ptr().cast(), len);
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if written != len as isize {
            return Err(error);
        }
    }
    Ok(())
}

/// (version, directory) of the memory cgroup this process is in, from `/proc/self/cgroup` and
/// `/proc/self/mountinfo`. cgroup v1's memory hierarchy wins over a v2 one without it.
fn own_memory_cgroup(cgroup: &str, mountinfo: &str) -> Option<(Version, PathBuf)> {
    let mut v2_path = None;
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            let (root, point) = mount_of(mountinfo, |fstype, options| fstype == "cgroup" && options.split(',').any(|o| o == "memory"))?;
            return Some((Version::V1, under_mount(&root, &point, path)?));
        }
        if controllers.is_empty() {
            v2_path = Some(path.to_string());
        }
    }
    let path = v2_path?;
    let (root, point) = mount_of(mountinfo, |fstype, _| fstype == "cgroup2")?;
    let dir = under_mount(&root, &point, &path)?;
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
    controllers.split_whitespace().any(|c| c == "memory").then_some((Version::V2, dir))
}

/// (mount root within the hierarchy, mount point) of the first mount `wanted(fstype, super options)`.
fn mount_of(mountinfo: &str, wanted: impl Fn(&str, &str) -> bool) -> Option<(String, String)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let mut rest = right.split(' ');
        let (fstype, _source, options) = (rest.next()?, rest.next()?, rest.next().unwrap_or(""));
        (fields.len() >= 5 && wanted(fstype, options)).then(|| (fields[3].to_string(), fields[4].to_string()))
    })
}

fn under_mount(root: &str, point: &str, path: &str) -> Option<PathBuf> {
    let relative = if root == "/" { path } else { path.strip_prefix(root)? };
    Some(Path::new(point).join(relative.trim_start_matches('/')))
}

/// cgroup v2 distributes a controller to children only when the parent enables it, which the
/// kernel refuses while the parent itself holds processes (as a cgroup berth was started in
/// usually does).
fn enable_v2_memory(dir: &Path) -> Result<(), String> {
    let subtree = dir.join("cgroup.subtree_control");
    if std::fs::read_to_string(&subtree).is_ok_and(|s| s.split_whitespace().any(|c| c == "memory")) {
        return Ok(());
    }
    std::fs::write(&subtree, "+memory").map_err(|e| {
        format!(
            "cgroup v2: cannot enable the memory controller in {} ({e}); start berth in a cgroup of its own \
             with the memory controller delegated (e.g. systemd Delegate=yes)",
            subtree.display()
        )
    })
}

/// Removes `berth-<pid>` cgroups of berth processes that no longer exist (after a `kill -9`),
/// killing the processes still in them.
fn remove_stale(dir: &Path, version: Version) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("berth-")).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(children) = std::fs::read_dir(entry.path()) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                // What the killed server's instances left running goes first.
                kill_cgroup(&child.path(), version);
                remove_dir_patiently(&child.path());
            }
        }
        let _ = std::fs::remove_dir(entry.path());
    }
}

/// Creates a cgroup directory, or takes the one already there (an instance's, on restart).
fn make_cgroup(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(format!("cannot create cgroup {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// A cgroup can be removed once its last process has been reaped, which may lag a kill a little.
fn remove_dir_patiently(dir: &Path) {
    for _ in 0..20 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(Duration::from_millis(5)),
            _ => return,
        }
    }
    tracing::debug!(cgroup = %dir.display(), "cgroup still busy; left for the next start to remove");
}

/// The value of `key` in a flat keyed file (`key value` lines).
fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
24 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
40 35 0:35 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 35 0:36 /docker/abc /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn finds_the_v1_memory_cgroup_below_its_mount() {
        let own = "9:name=systemd:/\n4:memory:/process_api/7f53\n1:cpu,cpuacct:/docker/abc/x\n0::/\n";
        assert_eq!(own_memory_cgroup(own, MOUNTS), Some((Version::V1, PathBuf::from("/sys/fs/cgroup/memory/process_api/7f53"))));
        assert_eq!(under_mount("/docker/abc", "/sys/fs/cgroup/cpu", "/docker/abc/x"), Some(PathBuf::from("/sys/fs/cgroup/cpu/x")));
        assert_eq!(under_mount("/docker/abc", "/sys/fs/cgroup/cpu", "/elsewhere"), None);
    }

    /// cgroup v2's files, on a plain directory standing in for the cgroup file system.
    #[test]
    fn v2_cgroup_found_delegated_and_limited() {
        let fs = tempfile::tempdir().unwrap();
        let own = fs.path().join("system.slice/berth.service");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        let mounts = format!("30 24 0:26 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n", fs.path().display());
        assert_eq!(own_memory_cgroup("0::/system.slice/berth.service\n", &mounts), Some((Version::V2, own.clone())));
        // Without the memory controller there is nothing to limit with.
        std::fs::write(own.join("cgroup.controllers"), "cpu pids\n").unwrap();
        assert_eq!(own_memory_cgroup("0::/system.slice/berth.service\n", &mounts), None);

        enable_v2_memory(&own).unwrap();
        assert_eq!(std::fs::read_to_string(own.join("cgroup.subtree_control")).unwrap(), "+memory");
        let cgroups = MemoryCgroups { version: Version::V2, base: own.clone() };
        let instance = cgroups.create("ep/Variant1/abc123", 1 << 30).unwrap();
        let dir = own.join("ep.Variant1.abc123");
        assert_eq!(std::fs::read_to_string(dir.join("memory.max")).unwrap(), "1073741824");
        assert_eq!(std::fs::read_to_string(dir.join("memory.swap.max")).unwrap(), "0");
        assert_eq!(instance.procs_file().to_str().unwrap(), dir.join("cgroup.procs").to_str().unwrap());
        std::fs::write(dir.join("memory.events"), "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(instance.oom_kills(), 1);
    }

    #[test]
    fn reads_oom_kill_counts() {
        assert_eq!(flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), Some(3));
        assert_eq!(flat_keyed("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n", "oom_kill"), Some(1));
        assert_eq!(flat_keyed("oom_kill_disable 0\n", "oom_kill"), None);
    }
}
