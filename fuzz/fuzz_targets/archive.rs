//! Model archives (tar, or tar.gz when the first byte is odd): whatever they hold, nothing may
//! land outside the model directory. A sibling directory stands for "outside" and must stay empty.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, archive)) = data.split_first() else { return };
    let base = std::env::temp_dir().join(format!("berth-fuzz-archive-{}", std::process::id()));
    let (dest, outside) = (base.join("a/b/model"), base.join("a/b/outside"));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let _ = berth_instances::fuzz_unpack(archive, &dest, mode % 2 == 1);
    let escaped: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(escaped.is_empty(), "an archive wrote outside the model directory");
    for entry in walk(&base.join("a")) {
        assert!(entry.starts_with(&dest) || entry.starts_with(&outside) || entry == base.join("a/b"), "{}", entry.display());
    }
    // Every link left in the model directory resolves inside it (or nowhere).
    for entry in walk(&dest) {
        if let Ok(real) = entry.canonicalize() {
            assert!(real.starts_with(dest.canonicalize().unwrap()), "{} leads to {}", entry.display(), real.display());
        }
    }
});

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}
