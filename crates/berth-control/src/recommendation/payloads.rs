//! A job's sample payloads: the files of the `.tar.gz` its `SamplePayloadUrl` names, each one
//! request body, read in memory (nothing is written to disk) with bounded counts and sizes.

use bytes::Bytes;
use std::io::Read;

/// The largest archive read.
pub(super) const MAX_ARCHIVE: u64 = 100 * 1024 * 1024;
/// Most payloads kept, and the largest one (SageMaker's own invocation limit).
const MAX_PAYLOADS: usize = 1000;
const MAX_PAYLOAD: u64 = 6 * 1024 * 1024;
/// Most bytes the archive may unpack to.
const MAX_UNPACKED: u64 = 512 * 1024 * 1024;

/// The payloads in a `.tar.gz`, in the archive's order, each with its file name; an error that
/// says what is wrong with the archive otherwise.
pub(super) fn unpack(archive: &[u8]) -> Result<Vec<(String, Bytes)>, String> {
    if !archive.starts_with(&[0x1f, 0x8b]) {
        return Err("the sample payload is not a .tar.gz archive (SamplePayloadUrl must name one, of payload files)".into());
    }
    let unpacked = flate2::read::GzDecoder::new(archive).take(MAX_UNPACKED);
    let mut tar = tar::Archive::new(unpacked);
    let mut out = Vec::new();
    for entry in tar.entries().map_err(|e| format!("the sample payload archive cannot be read: {e}"))? {
        let entry = entry.map_err(|e| format!("the sample payload archive cannot be read: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        // macOS's tar adds `._name` resource files; they are not payloads.
        if name.rsplit('/').next().is_some_and(|base| base.starts_with("._")) {
            continue;
        }
        if entry.size() > MAX_PAYLOAD {
            return Err(format!("sample payload {name} is {} bytes, more than an invocation may carry ({MAX_PAYLOAD})", entry.size()));
        }
        if out.len() == MAX_PAYLOADS {
            break;
        }
        let mut body = Vec::with_capacity(entry.size() as usize);
        entry.take(MAX_PAYLOAD).read_to_end(&mut body).map_err(|e| format!("sample payload {name} cannot be read: {e}"))?;
        out.push((name, Bytes::from(body)));
    }
    if out.is_empty() {
        return Err("the sample payload archive holds no payload file".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (name, body) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *body).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn payloads_are_the_archives_files_and_bad_archives_say_why() {
        let archive = tar_gz(&[("a.csv", b"1,2"), ("dir/._a.csv", b"junk"), ("dir/b.csv", b"3,4")]);
        let payloads = unpack(&archive).unwrap();
        assert_eq!(
            payloads.iter().map(|(n, b)| (n.as_str(), &b[..])).collect::<Vec<_>>(),
            vec![("a.csv", &b"1,2"[..]), ("dir/b.csv", &b"3,4"[..])]
        );
        assert!(unpack(b"1,2").unwrap_err().contains("not a .tar.gz"));
        assert!(unpack(&tar_gz(&[])).unwrap_err().contains("no payload"));
        assert!(unpack(&[0x1f, 0x8b, 0, 0]).unwrap_err().contains("cannot be read"));
    }
}
