//! A process in the sandbox tries what a hostile model would: the test binary runs itself again
//! as the probe (`probe_inside`, which does nothing unless asked), inside a sandbox whose policy
//! allows one directory to read and one to write, and reports what it could do.

use berth_sandbox::{Policy, Sandbox, Support};
use std::path::Path;
use std::sync::Arc;

/// Runs in the sandboxed child: each probe prints `name: ok` or `name: denied (...)`.
#[test]
fn probe_inside() {
    let Ok(spec) = std::env::var("SANDBOX_PROBE") else { return };
    let mut parts = spec.split('|');
    let (readable, outside, writable, parent, socket) =
        (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let show = |name: &str, r: std::io::Result<()>| match r {
        Ok(()) => println!("PROBE {name}: ok"),
        Err(e) => println!("PROBE {name}: denied ({e})"),
    };
    show("read allowed", std::fs::read(readable).map(drop));
    show("read outside", std::fs::read(outside).map(drop));
    show("write allowed", std::fs::write(Path::new(writable).join("out"), b"x"));
    show("write outside", std::fs::write(Path::new(outside).with_extension("written"), b"x"));
    show("parent environ", std::fs::read(format!("/proc/{parent}/environ")).map(drop));
    show("unix socket", std::os::unix::net::UnixStream::connect(socket).map(drop));
    // SAFETY: kill with signal 0 only checks permission.
    let signalled = unsafe { libc::kill(parent.parse().unwrap(), 0) };
    show("signal parent", if signalled == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) });
    // SAFETY: unshare takes a flag.
    let unshared = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    show("user namespace", if unshared == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) });
    let caps = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = caps.lines().find(|l| l.starts_with("CapEff:")).unwrap_or("").to_string();
    let bounding = caps.lines().find(|l| l.starts_with("CapBnd:")).unwrap_or("").to_string();
    println!("PROBE capabilities: {effective} {bounding}");
}

#[tokio::test]
async fn a_sandboxed_process_reads_and_writes_only_what_its_policy_allows() {
    let dir = tempfile::tempdir().unwrap();
    let (readable, writable, outside) = (dir.path().join("readable"), dir.path().join("writable"), dir.path().join("outside"));
    for d in [&readable, &writable, &outside] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(readable.join("model.txt"), b"model").unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    let socket = outside.join("engine.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // berth is not dumpable; this test stands in for it.
    berth_sandbox::make_self_undumpable().unwrap();

    let me = std::env::current_exe().unwrap();
    let mut policy = Policy::system(None, &[]);
    policy.add_program(&me).add_read(&readable).add_write(&writable);
    let sandbox = Arc::new(Sandbox::prepare(&policy).unwrap());
    let spec = format!(
        "{}|{}|{}|{}|{}",
        readable.join("model.txt").display(),
        outside.join("secret").display(),
        writable.display(),
        std::process::id(),
        socket.display()
    );
    let mut cmd = tokio::process::Command::new(&me);
    cmd.args(["--exact", "probe_inside", "--nocapture", "--test-threads=1"]).env("SANDBOX_PROBE", spec);
    sandbox.apply_to(&mut cmd);
    let out = cmd.output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let result = |name: &str| {
        let marker = format!("PROBE {name}: ");
        text.lines().find_map(|l| l.find(&marker).map(|at| l[at + marker.len()..].to_string())).unwrap_or_else(|| "missing".into())
    };
    let support = Support::detect();

    assert_eq!(result("read allowed"), "ok", "{text}");
    assert_eq!(result("write allowed"), "ok", "{text}");
    assert!(result("parent environ").starts_with("denied"), "{text}");
    assert!(result("unix socket").starts_with("denied"), "{text}");
    assert!(result("user namespace").starts_with("denied"), "{text}");
    assert!(result("capabilities").contains("CapEff:\t0000000000000000"), "{text}");
    assert!(result("capabilities").contains("CapBnd:\t0000000000000000"), "{text}");
    if support.confines_files() {
        assert!(result("read outside").starts_with("denied"), "{text}");
        assert!(result("write outside").starts_with("denied"), "{text}");
        assert!(!outside.join("secret.written").exists());
    }
    if support.confines_signals() {
        assert!(result("signal parent").starts_with("denied"), "{text}");
    }
}
