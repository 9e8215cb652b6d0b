//! Who may reach berth and how: authentication from the credentials file, TLS from PEM files,
//! the hosts requests may name, and the refusal to serve a network address without
//! authentication unless the operator says so; and the sandbox of local workers, with a warning
//! when what berth must keep to itself lies where workers may read.

use anyhow::{bail, Context};
use berth_aws::{AllowedHosts, Security};
use berth_instances::AllowedRoots;
use berth_sandbox::SandboxConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

pub struct SecurityArgs<'a> {
    pub listen: SocketAddr,
    pub auth: &'a str,
    pub credentials_file: Option<&'a Path>,
    pub allow_unauthenticated: bool,
    pub allowed_hosts: &'a [String],
    pub tls: bool,
    pub body_timeout: Duration,
    /// Bytes of request bodies held at once, across connections.
    pub max_body_memory: usize,
    /// `--demo`: with no authentication on a network address, berth makes a key pair of its
    /// own for the demo rather than refusing to start.
    pub demo: bool,
}

/// A key pair berth made for the demo: the demo listens on a network address (in a container)
/// and no authentication was set up, so it checks signatures made with this pair.
pub struct DemoKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl DemoKey {
    fn generate() -> anyhow::Result<Self> {
        use std::io::Read;
        // 11 bytes for the access key id (printed in the log) and 40 others for the secret: no
        // byte of the secret can be learnt from the id.
        let mut random = [0u8; 51];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random)).context("reading /dev/urandom")?;
        let (id_bytes, secret_bytes) = random.split_at(11);
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let access_key_id = "BERTHDEMO".chars().chain(id_bytes.iter().map(|b| UPPER[(*b % 32) as usize] as char)).collect();
        let secret_access_key = secret_bytes.iter().map(|b| SECRET[(*b % 64) as usize] as char).collect();
        Ok(DemoKey { access_key_id, secret_access_key })
    }
}

/// The gate's settings, checked before berth binds (and the demo's key pair, when berth made one).
pub fn security(args: SecurityArgs<'_>) -> anyhow::Result<(Security, Option<DemoKey>)> {
    let principals = match (args.auth, args.credentials_file) {
        ("sigv4", Some(path)) => {
            warn_if_readable_by_others(path);
            let text = std::fs::read_to_string(path).with_context(|| format!("reading the credentials file {}", path.display()))?;
            let principals =
                berth_aws::parse_credentials(&text).map_err(|e| anyhow::anyhow!("the credentials file {}: {e}", path.display()))?;
            info!(principals = principals.len(), file = %path.display(), "SigV4 authentication on");
            Some(Arc::new(principals))
        }
        ("sigv4", None) => bail!("--auth sigv4 needs --credentials-file (a file in the AWS shared-credentials format)"),
        (_, Some(_)) => bail!("--credentials-file is read only with --auth sigv4"),
        _ => None,
    };
    let mut demo_key = None;
    let mut principals = principals;
    if principals.is_none() && !args.listen.ip().is_loopback() && args.demo && !args.allow_unauthenticated {
        let key = DemoKey::generate()?;
        let profile = format!("[demo]\naws_access_key_id = {}\naws_secret_access_key = {}\n", key.access_key_id, key.secret_access_key);
        principals = Some(Arc::new(berth_aws::parse_credentials(&profile).map_err(|e| anyhow::anyhow!("the demo's key pair: {e}"))?));
        warn!(listen = %args.listen, access_key_id = %key.access_key_id, "the demo listens on a network address without authentication set up: it checks signatures made with a key pair of its own (printed with the demo's commands)");
        demo_key = Some(key);
    }
    if principals.is_none() && !args.listen.ip().is_loopback() {
        if !args.allow_unauthenticated {
            bail!(
                "refusing to serve {} without authentication: anyone who reaches it could run programs and read model data. \
                 Use --auth sigv4 --credentials-file FILE, listen on 127.0.0.1, or pass --allow-unauthenticated",
                args.listen
            );
        }
        warn!(listen = %args.listen, "SERVING A NETWORK ADDRESS WITHOUT AUTHENTICATION (--allow-unauthenticated): anyone who reaches this port can create models and endpoints");
    }
    let security = Security {
        principals,
        hosts: AllowedHosts::new(args.listen, args.allowed_hosts),
        tls: args.tls,
        body_timeout: args.body_timeout,
        bodies: berth_aws::BodyBudget::new(args.max_body_memory),
    };
    Ok((security, demo_key))
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            warn!(file = %path.display(), "the credentials file is readable by other users; chmod 600 it");
        }
    }
}

/// The TLS acceptor for `--tls-cert` and `--tls-key`.
pub fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        bail!("the TLS certificate file {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let mut config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Raises the open-file soft limit to the hard limit (every connection and every instance log
/// takes descriptors) and returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write to and read from the struct passed, which outlives the calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// The sandbox of local workers, as the flags ask and the kernel allows; said in the log, with a
/// warning when berth's data directory or key files lie where workers may read.
/// `secrets` are what workers must not read, named: berth's data directory, its key files.
pub fn worker_sandbox(
    enabled: bool,
    worker_read: &[PathBuf],
    exec_roots: &AllowedRoots,
    secrets: Vec<(&str, PathBuf)>,
) -> anyhow::Result<Option<Arc<SandboxConfig>>> {
    if !enabled {
        warn!("local workers are NOT sandboxed (--worker-sandbox off): they read, write and run what berth's user may");
        return Ok(None);
    }
    let mut extra = Vec::new();
    for dir in worker_read {
        anyhow::ensure!(dir.is_absolute(), "--worker-read {} must be an absolute path", dir.display());
        extra.push(dir.canonicalize().with_context(|| format!("--worker-read {}", dir.display()))?);
    }
    let config = SandboxConfig { extra };
    let support = berth_sandbox::Support::detect();
    info!(sandbox = %support.describe(), "local workers start sandboxed");
    let mut policy = config.base_policy();
    for root in exec_roots.resolved() {
        policy.add_read_exec(root.to_path_buf());
    }
    for (what, path) in secrets {
        let path = path.canonicalize().unwrap_or(path);
        if let Some(root) = berth_sandbox::readable_under(&policy, &path) {
            warn!(path = %path.display(), readable_through = %root.display(), "workers may read berth's {what}: move it out of that directory");
        }
    }
    Ok(Some(Arc::new(config)))
}
