//! Multi-model variants (`Mode: MultiModel`): any archive under the model's `ModelDataUrl`
//! prefix is served by its key (`TargetModel`). Each instance's loaded models are tracked here:
//! the first call of a model on an instance fetches its archive (shared by every instance and
//! every concurrent first call) and loads it through SageMaker's multi-model container API
//! (`POST /models`); later calls are warm. When loading would take an instance past its memory,
//! the least recently used models it is not serving are unloaded first (`DELETE /models/{name}`).
//! With `ModelCacheSetting: Disabled` a model is unloaded after each call.

use crate::forward::{Forwarder, InvokeError};
use berth_domain::{ModelFetchRequest, ModelLoadRequest};
use berth_instances::{dir_bytes, staged_models_dir, InstanceSlot, ModelArtifacts, ModelData, ModelDir, STAGED_MODELS_MOUNT};
use berth_metrics::VariantMetrics;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a `TargetModel` may be (SageMaker's limit).
pub const MAX_TARGET_MODEL_LEN: usize = 1024;

/// Where a multi-model variant's models come from, and how it keeps them.
pub struct ModelCacheSettings {
    /// `ModelDataUrl`: an `s3://` or `file://` prefix; a model's archive is this plus its key.
    pub prefix: String,
    pub artifacts: ModelArtifacts,
    /// How long fetching one model's archive may take.
    pub download_timeout: Duration,
    /// What one instance may hold loaded, in bytes of model files (its memory).
    pub memory_bytes: u64,
    /// `ModelCacheSetting: Enabled` (the default); false unloads a model after each call.
    pub keep_loaded: bool,
    /// berth's data directory, under which each instance's loaded models are staged as
    /// hard-link trees ([`staged_models_dir`]), so that an instance sees (and a sandboxed worker
    /// may read) only its own. None: the worker reads a model's files where they were unpacked.
    pub staging: Option<PathBuf>,
    /// Whether the instances are containers, which see their staged models at
    /// [`STAGED_MODELS_MOUNT`] (a local process sees the staged directory itself).
    pub in_container: bool,
    /// The port of each instance's own model loader (`berth model-loader`, the sidecar of a
    /// pod on Kubernetes), which fetches a model into the instance's [`STAGED_MODELS_MOUNT`]
    /// when berth asks; None: berth fetches and stages models itself.
    pub loader_port: Option<u16>,
}

/// The models each instance of one multi-model variant has loaded.
pub struct ModelCache {
    settings: ModelCacheSettings,
    /// By instance (slot serial): its restart count when these were loaded, and its models.
    instances: Mutex<HashMap<u64, InstanceModels>>,
    /// Ticks once per use; a model's last tick orders unloading.
    clock: AtomicU64,
}

#[derive(Default)]
struct InstanceModels {
    restarts: u64,
    models: HashMap<String, Arc<Resident>>,
}

/// A model on an instance: loading, loaded, or failed to load.
struct Resident {
    /// The name the container knows it by.
    name: String,
    state: tokio::sync::OnceCell<Result<Loaded, String>>,
    last_used: AtomicU64,
    in_use: AtomicUsize,
}

struct Loaded {
    bytes: u64,
    /// The unpacked archive, kept while any instance has the model loaded (None: the
    /// instance's own loader holds its files).
    _dir: Option<ModelDir>,
}

/// A model being used for one call; the model cannot be unloaded meanwhile.
pub struct ModelUse {
    resident: Arc<Resident>,
    cache: Arc<ModelCache>,
    serial: u64,
    slot: Arc<InstanceSlot>,
    forwarder: Arc<Forwarder>,
    metrics: Arc<VariantMetrics>,
    /// Where the call goes on the container.
    pub path: String,
}

impl Drop for ModelUse {
    fn drop(&mut self) {
        self.resident.in_use.fetch_sub(1, Ordering::AcqRel);
        if !self.cache.settings.keep_loaded {
            let (cache, resident, serial, slot, forwarder, metrics) =
                (self.cache.clone(), self.resident.clone(), self.serial, self.slot.clone(), self.forwarder.clone(), self.metrics.clone());
            tokio::spawn(async move {
                if cache.forget_if_idle(serial, &resident) {
                    let unloading = Instant::now();
                    if let Err(e) = unload(&forwarder, &slot, &resident.name, &cache.settings).await {
                        tracing::warn!(instance = %slot.id, model = %resident.name, error = %e, "unloading a model failed");
                    }
                    metrics.model_unloading_us.record(micros(unloading.elapsed()));
                    metrics.set_loaded_models(cache.loaded_count());
                }
            });
        }
    }
}

/// The model cache and key of a call to `variant`: both for a multi-model variant (which needs
/// a `TargetModel`), neither for another (which takes none).
pub(crate) fn model_of<'v>(
    endpoint: &str,
    variant: &str,
    models: Option<&'v Arc<ModelCache>>,
    target: Option<&'v str>,
) -> Result<Option<(&'v Arc<ModelCache>, &'v str)>, InvokeError> {
    match (models, target) {
        (Some(cache), Some(target)) => Ok(Some((cache, target))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(InvokeError::Target(format!(
            "Endpoint {endpoint} is a multi-model endpoint: name the model to invoke with TargetModel (its key under the model's ModelDataUrl)."
        ))),
        (None, Some(_)) => Err(InvokeError::Target(format!(
            "Variant {variant} of endpoint {endpoint} does not serve multiple models: leave TargetModel out."
        ))),
    }
}

/// Makes a call's model ready on `slot` and holds it for the call (no model for a single-model
/// variant). Boxed: loading a model (fetching its archive) is a large future, which would
/// otherwise make every invocation's future ten times larger than it needs.
pub(crate) async fn acquire_for(
    target: Option<(&Arc<ModelCache>, &str)>,
    forwarder: &Arc<Forwarder>,
    slot: &Arc<InstanceSlot>,
    variant: &str,
    metrics: &Arc<VariantMetrics>,
) -> Result<Option<ModelUse>, InvokeError> {
    match target {
        Some((cache, target)) => Ok(Some(Box::pin(cache.acquire(forwarder, slot, variant, target, metrics)).await?)),
        None => Ok(None),
    }
}

/// Where a call goes on the container: its model's `/models/{name}/invoke`, or `/invocations`.
pub(crate) fn call_path(model: Option<&ModelUse>) -> &str {
    model.map_or(crate::forward::INVOCATIONS, |m| m.path.as_str())
}

/// The name a container knows a model key by: a digest, so any key becomes a plain name.
fn container_name(target: &str) -> String {
    let digest = Sha256::digest(target.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A `TargetModel` that stays under its prefix: a relative key without `.`/`..` segments,
/// of printable characters, at most 1,024 long.
pub fn check_target_model(target: &str) -> Result<(), InvokeError> {
    if target.is_empty() || target.len() > MAX_TARGET_MODEL_LEN {
        return Err(InvokeError::Target(format!(
            "1 validation error detected: Value at 'targetModel' failed to satisfy constraint: Member must have length between 1 and {MAX_TARGET_MODEL_LEN}"
        )));
    }
    if target.starts_with('/') || target.contains('\\') || target.chars().any(char::is_control) {
        return Err(InvokeError::Target(format!("TargetModel '{target}' must be a key relative to the model's ModelDataUrl.")));
    }
    if target.split('/').any(|segment| segment == "." || segment == ".." || segment.is_empty()) {
        return Err(InvokeError::Target(format!("TargetModel '{target}' must not have empty, '.' or '..' segments.")));
    }
    Ok(())
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCache").field("prefix", &self.settings.prefix).field("loaded", &self.loaded_count()).finish()
    }
}

impl ModelCache {
    pub fn new(settings: ModelCacheSettings) -> Arc<Self> {
        Arc::new(ModelCache { settings, instances: Mutex::new(HashMap::new()), clock: AtomicU64::new(0) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, InstanceModels>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the instance has `target` loaded (and is the same process that loaded it).
    pub fn has_loaded(&self, slot: &InstanceSlot, target: &str) -> bool {
        let instances = self.lock();
        instances.get(&slot.serial()).is_some_and(|i| {
            i.restarts == slot.restarts() && i.models.get(target).is_some_and(|r| r.state.get().is_some_and(|s| s.is_ok()))
        })
    }

    /// Forgets the models of instances the variant no longer runs (their archives' leases go).
    pub fn keep_instances(&self, serials: &[u64]) {
        self.lock().retain(|serial, _| serials.contains(serial));
    }

    /// Models loaded on all instances.
    pub fn loaded_count(&self) -> usize {
        self.lock().values().map(|i| i.models.values().filter(|r| r.state.get().is_some_and(|s| s.is_ok())).count()).sum()
    }

    /// Makes `target` ready on the instance and holds it for one call: loads it if needed
    /// (once, however many calls ask at the same time), unloading the least recently used
    /// idle models first when it would not fit.
    pub async fn acquire(
        self: &Arc<Self>,
        forwarder: &Arc<Forwarder>,
        slot: &Arc<InstanceSlot>,
        variant: &str,
        target: &str,
        metrics: &Arc<VariantMetrics>,
    ) -> Result<ModelUse, InvokeError> {
        let waited = Instant::now();
        let serial = slot.serial();
        let resident = {
            let mut instances = self.lock();
            let instance = instances.entry(serial).or_default();
            if instance.restarts != slot.restarts() {
                // A new process in the slot: whatever the last one loaded is gone.
                *instance = InstanceModels { restarts: slot.restarts(), models: HashMap::new() };
            }
            let resident = instance
                .models
                .entry(target.to_string())
                .or_insert_with(|| {
                    Arc::new(Resident {
                        name: container_name(target),
                        state: tokio::sync::OnceCell::new(),
                        last_used: AtomicU64::new(0),
                        in_use: AtomicUsize::new(0),
                    })
                })
                .clone();
            resident.in_use.fetch_add(1, Ordering::AcqRel);
            resident.last_used.store(self.clock.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
            resident
        };
        let hit = resident.state.initialized();
        let use_ = ModelUse {
            path: format!("/models/{}/invoke", resident.name),
            resident,
            cache: self.clone(),
            serial,
            slot: slot.clone(),
            forwarder: forwarder.clone(),
            metrics: metrics.clone(),
        };
        let state = use_.resident.state.get_or_init(|| self.load(forwarder, slot, target, &use_.resident, metrics)).await;
        metrics.record_model_cache(hit && state.is_ok());
        match state {
            Ok(_) => {
                if !hit {
                    metrics.model_loading_wait_us.record(micros(waited.elapsed()));
                }
                Ok(use_)
            }
            Err(reason) => {
                // Failed: the next call tries again.
                let mut instances = self.lock();
                if let Some(instance) = instances.get_mut(&serial) {
                    if instance.models.get(target).is_some_and(|r| Arc::ptr_eq(r, &use_.resident)) {
                        instance.models.remove(target);
                    }
                }
                Err(InvokeError::ModelLoad { variant: variant.to_string(), message: reason.clone() })
            }
        }
    }

    async fn load(
        &self,
        forwarder: &Forwarder,
        slot: &InstanceSlot,
        target: &str,
        resident: &Resident,
        metrics: &VariantMetrics,
    ) -> Result<Loaded, String> {
        let url = join(&self.settings.prefix, target);
        let fetch = Instant::now();
        let failed =
            |e: String| format!("Failed to download model data for TargetModel {target} ({url}): {e}. Make sure the archive is there.");
        let (bytes, dir) = match self.settings.loader_port {
            Some(port) => {
                let request = ModelFetchRequest { model_name: resident.name.clone(), target: target.to_string() };
                let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
                let (status, answer) = forwarder.call_at(slot, Some(port), "POST", "/models", &body).await.map_err(failed)?;
                let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
                if !(200..300).contains(&status) {
                    return Err(failed(answer["error"].as_str().unwrap_or("the instance's model loader failed").to_string()));
                }
                (answer["bytes"].as_u64().unwrap_or(0), None)
            }
            None => {
                let dir = self
                    .settings
                    .artifacts
                    .prepare(ModelData::Url(&url), self.settings.download_timeout)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                // Walking the model's files is blocking I/O: off the request's thread.
                let files = dir.path().to_path_buf();
                (tokio::task::spawn_blocking(move || dir_bytes(&files)).await.map_err(|e| e.to_string())?, Some(dir))
            }
        };
        metrics.model_downloading_us.record(micros(fetch.elapsed()));
        if bytes > self.settings.memory_bytes {
            if let Some(port) = self.settings.loader_port {
                let _ = forwarder.call_at(slot, Some(port), "DELETE", &format!("/models/{}", resident.name), b"").await;
            }
            return Err(format!(
                "TargetModel {target} needs {} MiB, more than an instance's {} MiB.",
                bytes >> 20,
                self.settings.memory_bytes >> 20
            ));
        }
        // Unload the least recently used idle models until this one fits.
        while let Some(victim) = self.victim(slot.serial(), bytes, resident) {
            let unloading = Instant::now();
            if let Err(e) = unload(forwarder, slot, &victim, &self.settings).await {
                tracing::warn!(instance = %slot.id, model = %victim, error = %e, "unloading a model failed");
            }
            metrics.model_unloading_us.record(micros(unloading.elapsed()));
            metrics.set_loaded_models(self.loaded_count());
        }
        let loading = Instant::now();
        let url = match (&self.settings.staging, &dir) {
            (_, None) => format!("{STAGED_MODELS_MOUNT}/{}", resident.name),
            (None, Some(dir)) => dir.path().display().to_string(),
            (Some(data_dir), Some(dir)) => {
                let staged = staged_models_dir(data_dir, &slot.id).join(&resident.name);
                let (source, into) = (dir.path().to_path_buf(), staged.clone());
                tokio::task::spawn_blocking(move || link_tree(&source, &into))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|e| format!("Could not stage TargetModel {target} for its instance: {e}"))?;
                match self.settings.in_container {
                    true => format!("{STAGED_MODELS_MOUNT}/{}", resident.name),
                    false => staged.display().to_string(),
                }
            }
        };
        let body = serde_json::to_vec(&ModelLoadRequest { model_name: resident.name.clone(), url }).map_err(|e| e.to_string())?;
        let (status, answer) = forwarder.call(slot, "POST", "/models", &body).await?;
        // 409: the container had it already (loaded before berth's record of it was reset).
        if !(200..300).contains(&status) && status != 409 {
            let answer = String::from_utf8_lossy(&answer);
            return Err(format!("The model container could not load TargetModel {target} ({status}): {answer}"));
        }
        metrics.model_loading_us.record(micros(loading.elapsed()));
        tracing::info!(instance = %slot.id, model = target, name = %resident.name, bytes, "model loaded");
        // Counted with this one (not yet marked loaded).
        metrics.set_loaded_models(self.loaded_count() + 1);
        Ok(Loaded { bytes, _dir: dir })
    }

    /// The least recently used loaded model of the instance that no call is using, taken out of
    /// the cache, if `bytes` more would not fit beside what is loaded.
    fn victim(&self, serial: u64, bytes: u64, loading: &Resident) -> Option<String> {
        let mut instances = self.lock();
        let instance = instances.get_mut(&serial)?;
        let loaded = |r: &Resident| r.state.get().and_then(|s| s.as_ref().ok()).map(|l| l.bytes);
        let used: u64 = instance.models.values().filter_map(|r| loaded(r)).sum();
        if used + bytes <= self.settings.memory_bytes {
            return None;
        }
        let (key, _) = instance
            .models
            .iter()
            .filter(|(_, r)| !std::ptr::eq(r.as_ref(), loading) && loaded(r).is_some() && r.in_use.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, r)| r.last_used.load(Ordering::Relaxed))?;
        let key = key.clone();
        instance.models.remove(&key).map(|r| r.name.clone())
    }

    /// Takes a model out of the cache if no call uses it (ModelCacheSetting Disabled).
    fn forget_if_idle(&self, serial: u64, resident: &Arc<Resident>) -> bool {
        let mut instances = self.lock();
        let Some(instance) = instances.get_mut(&serial) else { return false };
        let key = instance.models.iter().find(|(_, r)| Arc::ptr_eq(r, resident)).map(|(k, _)| k.clone());
        match key {
            Some(k) if resident.in_use.load(Ordering::Acquire) == 0 && resident.state.initialized() => {
                instance.models.remove(&k);
                true
            }
            _ => false,
        }
    }
}

/// Unloads a model from the instance's container, then removes its staged files (if any, or
/// has the instance's loader remove them).
async fn unload(forwarder: &Forwarder, slot: &InstanceSlot, name: &str, settings: &ModelCacheSettings) -> Result<(), String> {
    let (status, answer) = forwarder.call(slot, "DELETE", &format!("/models/{name}"), b"").await?;
    if let Some(port) = settings.loader_port {
        if let Err(e) = forwarder.call_at(slot, Some(port), "DELETE", &format!("/models/{name}"), b"").await {
            tracing::warn!(instance = %slot.id, model = name, error = %e, "the model loader could not remove a model's files");
        }
    } else if let Some(data_dir) = &settings.staging {
        let _ = tokio::fs::remove_dir_all(staged_models_dir(data_dir, &slot.id).join(name)).await;
    }
    match status {
        200..=299 | 404 => Ok(()),
        _ => Err(format!("{status}: {}", String::from_utf8_lossy(&answer))),
    }
}

/// Makes `to` a tree of hard links to the files under `from` (copies where a link cannot be
/// made, as across file systems); links under `from` are not followed.
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    berth_instances::private_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_tree(&source, &target)?;
        } else if kind.is_file() && std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target)?;
        }
    }
    Ok(())
}

/// The archive of `target` under `prefix`.
fn join(prefix: &str, target: &str) -> String {
    if prefix.ends_with('/') {
        format!("{prefix}{target}")
    } else {
        format!("{prefix}/{target}")
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_models_stay_under_their_prefix() {
        for ok in ["model-a.tar.gz", "tenants/7/model.tar.gz", "a b.tar.gz"] {
            assert!(check_target_model(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x.tar.gz", "a/../../x", "a//b", "./a", "a\\b", "a\nb", &"m".repeat(1025)] {
            assert!(check_target_model(bad).is_err(), "{bad:?}");
        }
        assert_eq!(join("s3://b/p/", "m.tar.gz"), "s3://b/p/m.tar.gz");
        assert_eq!(join("file:///models", "m.tar.gz"), "file:///models/m.tar.gz");
    }

    #[test]
    fn container_names_are_plain_and_stable() {
        let name = container_name("tenants/7/model.tar.gz");
        assert_eq!(name.len(), 32);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()) && berth_domain::is_model_name(&name), "servers take it");
        assert_eq!(name, container_name("tenants/7/model.tar.gz"));
        assert_ne!(name, container_name("tenants/8/model.tar.gz"));
    }
}
