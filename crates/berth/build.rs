//! Stamps the binary with the commit it was built from (`berth --version`): `BERTH_COMMIT` when
//! the build sets it (a source archive has no Git), else `git rev-parse`, else "unknown commit".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_COMMIT");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Rebuilt when HEAD moves (a checkout, or a commit on the branch it names).
    for watched in [".git/HEAD", ".git/packed-refs"] {
        if root.join(watched).exists() {
            println!("cargo:rerun-if-changed={}", root.join(watched).display());
        }
    }
    if let Ok(head) = std::fs::read_to_string(root.join(".git/HEAD")) {
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            if root.join(".git").join(reference).exists() {
                println!("cargo:rerun-if-changed={}", root.join(".git").join(reference).display());
            }
        }
    }
    let commit = std::env::var("BERTH_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(&root).output().ok()?;
        let dirty = Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .current_dir(&root)
            .output()
            .is_ok_and(|o| !o.stdout.is_empty());
        let hash = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !hash.is_empty()).then(|| if dirty { format!("{hash}-modified") } else { hash })
    });
    println!("cargo:rustc-env=BERTH_COMMIT={}", commit.unwrap_or_else(|| "unknown commit".into()));
}
