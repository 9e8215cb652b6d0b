//! Inference components: models placed on an endpoint variant's instances as copies, each copy
//! taking the cores and memory its component declares, and the placement that decides which
//! instance runs which copy, which copies wait for room, and how many instances the variant's
//! managed instance scaling keeps.

use crate::{ContainerSpec, RollingPolicy, Timestamp};
use serde::{Deserialize, Serialize};

wire_enum!(
    /// `InferenceComponentStatus`.
    ComponentStatus { InService, Creating, Updating, Failed, Deleting }
);

/// `ComputeResourceRequirements` of one copy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ComputeRequirements {
    /// `NumberOfCpuCoresRequired` (SageMaker's default when unset: none reserved).
    pub cpu_cores: Option<f64>,
    /// `MinMemoryRequiredInMb`: what a copy reserves on its instance.
    pub min_memory_mb: u64,
    /// `MaxMemoryRequiredInMb`: the copy's memory limit (its instance's memory when unset).
    pub max_memory_mb: Option<u64>,
}

impl ComputeRequirements {
    fn cores(&self) -> f64 {
        self.cpu_cores.unwrap_or(0.0)
    }
}

/// `ManagedInstanceScaling` of a variant that hosts inference components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedInstanceScaling {
    pub enabled: bool,
    pub min_instances: Option<u32>,
    pub max_instances: Option<u32>,
}

impl ManagedInstanceScaling {
    /// The instance counts scaling keeps within, when it is enabled: `[min, max]`, with the
    /// variant's initial count standing in for what is unset.
    pub fn range(&self, initial: u32) -> Option<(u32, u32)> {
        self.enabled.then(|| {
            let min = self.min_instances.unwrap_or(initial);
            (min, self.max_instances.unwrap_or(initial.max(min)).max(min))
        })
    }
}

/// An inference component as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceComponent {
    pub name: String,
    pub arn: String,
    pub endpoint_name: String,
    pub variant_name: String,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub status: ComponentStatus,
    pub failure_reason: Option<String>,
    /// `Specification.ModelName`, when the component names a model.
    pub model_name: Option<String>,
    /// What each copy runs: the model's container, or `Specification.Container`, fixed when
    /// the component was created or updated.
    pub container: ContainerSpec,
    /// Whether `Specification.Container` was given (Describe shows it then).
    pub own_container: bool,
    pub requirements: ComputeRequirements,
    pub download_timeout_secs: Option<u32>,
    pub startup_timeout_secs: Option<u32>,
    /// `RuntimeConfig.CopyCount` as last set.
    pub desired_copies: u32,
    /// Copies running and healthy when last committed.
    pub current_copies: u32,
    /// Raised by each specification update: copies of an older generation are replaced.
    pub generation: u32,
    /// The model's `EnableNetworkIsolation`.
    #[serde(default)]
    pub network_isolation: bool,
    /// The highest generation given so far (a rollback restores a lower one; the next update
    /// still takes a new number).
    #[serde(default)]
    pub generations: u32,
    /// `DeploymentConfig` of the last update that had one (Describe's `LastDeploymentConfig`).
    #[serde(default)]
    pub last_deployment: Option<ComponentDeployment>,
    /// A rolling update in progress.
    #[serde(default)]
    pub rollout: Option<ComponentRollout>,
}

/// What a component's copies run, as one update sets it: the part of a component a rolling
/// update replaces (and a rollback restores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentRevision {
    pub generation: u32,
    pub model_name: Option<String>,
    pub container: ContainerSpec,
    pub own_container: bool,
    pub requirements: ComputeRequirements,
    pub download_timeout_secs: Option<u32>,
    pub startup_timeout_secs: Option<u32>,
    pub network_isolation: bool,
}

/// `DeploymentConfig` of UpdateInferenceComponent: a rolling update's policy (batch sizes in
/// copies) and the alarms that roll it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentDeployment {
    pub policy: RollingPolicy,
    pub rollback_alarms: Vec<String>,
}

/// A rolling update in progress: copies of the component's revision replace those of `from`,
/// a batch at a time, each batch baking while the alarms are watched. Rolling back swaps the
/// two: the earlier revision comes back in batches of `RollbackMaximumBatchSize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentRollout {
    /// The revision being replaced (while rolling back: the one that failed).
    pub from: ComponentRevision,
    pub deployment: ComponentDeployment,
    /// Copies of the component's revision wanted at this step (the rest run `from`).
    pub target: u32,
    /// When the batch that reached `target` has baked (set once it runs).
    pub baked_at: Option<Timestamp>,
    /// `MaximumExecutionTimeoutInSeconds` from the update.
    pub deadline: Option<Timestamp>,
    /// Why it rolls back, once it does.
    pub rolling_back: Option<String>,
}

/// What one look at a rolling update found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutProgress {
    /// The step's copies are not all running yet.
    Starting,
    /// The step's copies run and bake until the time given.
    Baking(Timestamp),
    /// The next batch begins: this many copies of the component's revision are wanted.
    NextBatch(u32),
    /// Every copy runs the component's revision.
    Done,
}

impl ComponentDeployment {
    /// SageMaker's limits: a batch of at least one copy, and as a percentage between 5 and 50
    /// of the copies; a rollback batch of at least one copy (a percentage at most 100); a wait
    /// of at most an hour; a timeout between 600 and 28800 seconds; 1 to 10 alarms.
    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let invalid = |m: String| Err(crate::DomainError::Validation(m));
        let p = &self.policy;
        match p.max_batch {
            s if s.value < 1 => return invalid("MaximumBatchSize.Value must be at least 1.".into()),
            s if s.unit == crate::CapacityUnit::CapacityPercent && !(5..=50).contains(&s.value) => {
                return invalid(format!("MaximumBatchSize ({}%) must be between 5% and 50% of the copy count.", s.value))
            }
            _ => {}
        }
        if let Some(s) = p.rollback_max_batch {
            if s.value < 1 || (s.unit == crate::CapacityUnit::CapacityPercent && s.value > 100) {
                return invalid("RollbackMaximumBatchSize.Value must be at least 1 (and a percentage at most 100).".into());
            }
        }
        if p.wait_interval_secs > 3600 {
            return invalid(format!("WaitIntervalInSeconds ({}) must be between 0 and 3600.", p.wait_interval_secs));
        }
        crate::deployment::check_timeout(p.max_execution_secs)?;
        if self.rollback_alarms.len() > 10 || self.rollback_alarms.iter().any(|a| a.trim().is_empty() || a.len() > 255) {
            return invalid("AutoRollbackConfiguration.Alarms takes 1 to 10 alarm names of 1 to 255 characters.".into());
        }
        Ok(())
    }
}

impl ComponentRollout {
    /// Copies per batch out of `desired`: the rollback's size while rolling back (all at once
    /// unless `RollbackMaximumBatchSize` says otherwise).
    fn batch(&self, desired: u32) -> u32 {
        let p = &self.deployment.policy;
        match (&self.rolling_back, p.rollback_max_batch) {
            (Some(_), None) => desired.max(1),
            (Some(_), Some(size)) => size.instances(desired),
            (None, _) => p.max_batch.instances(desired),
        }
    }
}

impl InferenceComponent {
    pub fn revision(&self) -> ComponentRevision {
        ComponentRevision {
            generation: self.generation,
            model_name: self.model_name.clone(),
            container: self.container.clone(),
            own_container: self.own_container,
            requirements: self.requirements,
            download_timeout_secs: self.download_timeout_secs,
            startup_timeout_secs: self.startup_timeout_secs,
            network_isolation: self.network_isolation,
        }
    }

    pub fn set_revision(&mut self, r: ComponentRevision) {
        self.generation = r.generation;
        self.model_name = r.model_name;
        self.container = r.container;
        self.own_container = r.own_container;
        self.requirements = r.requirements;
        self.download_timeout_secs = r.download_timeout_secs;
        self.startup_timeout_secs = r.startup_timeout_secs;
        self.network_isolation = r.network_isolation;
    }

    /// A new generation number for an update's revision.
    pub fn next_generation(&mut self) -> u32 {
        self.generations = self.generations.max(self.generation) + 1;
        self.generations
    }

    /// The revision it runs as `generation`: its own, or its rollout's other one.
    pub fn revision_at(&self, generation: u32) -> Option<ComponentRevision> {
        if generation == self.generation {
            return Some(self.revision());
        }
        self.rollout.as_ref().map(|r| &r.from).filter(|r| r.generation == generation).cloned()
    }

    /// The component as it would run `generation`: itself, or its rollout's other revision.
    pub fn at_generation(&self, generation: u32) -> Option<InferenceComponent> {
        let revision = self.revision_at(generation)?;
        let mut other = self.clone();
        other.set_revision(revision);
        Some(other)
    }

    /// What placement is asked for this component: its copies, split between two revisions
    /// while a rolling update runs.
    pub fn demands(&self) -> Vec<PlacementDemand> {
        let demand = |r: &ComponentRevision, desired| PlacementDemand {
            component: self.name.clone(),
            requirements: r.requirements,
            desired,
            generation: r.generation,
        };
        match (&self.status, &self.rollout) {
            (ComponentStatus::Failed | ComponentStatus::Deleting, _) => vec![demand(&self.revision(), 0)],
            (_, Some(r)) => {
                let target = r.target.min(self.desired_copies);
                vec![demand(&r.from, self.desired_copies - target), demand(&self.revision(), target)]
            }
            (_, None) => vec![demand(&self.revision(), self.desired_copies)],
        }
    }

    /// Its rolling update, while it moves forward (not rolling back, not being deleted).
    pub fn rolling_forward(&self) -> Option<&ComponentRollout> {
        self.rollout.as_ref().filter(|r| r.rolling_back.is_none() && self.status == ComponentStatus::Updating)
    }

    /// Starts a rolling update to the component's (new) revision from `from`: the first batch.
    pub fn start_rollout(&mut self, from: ComponentRevision, deployment: ComponentDeployment, now: Timestamp) {
        let deadline = deployment.policy.max_execution_secs.map(|s| Timestamp::from_millis(now.millis() + i64::from(s) * 1000));
        let mut rollout = ComponentRollout { from, deployment, target: 0, baked_at: None, deadline, rolling_back: None };
        rollout.target = rollout.batch(self.desired_copies).min(self.desired_copies);
        self.rollout = Some(rollout);
    }

    /// Rolls a rolling update back, for `why`: the earlier revision is the component's again,
    /// its first batch up from the `restored_running` copies of it still running.
    pub fn roll_back(&mut self, why: String, restored_running: u32) {
        let Some(mut rollout) = self.rollout.take() else { return };
        let failed = self.revision();
        self.set_revision(std::mem::replace(&mut rollout.from, failed));
        rollout.rolling_back = Some(why);
        rollout.baked_at = None;
        rollout.target = (restored_running + rollout.batch(self.desired_copies)).min(self.desired_copies);
        self.rollout = Some(rollout);
    }

    /// Advances a rolling update, given the copies running of the component's revision
    /// (`current`) and of the other one (`previous`): once the step's copies run and have
    /// baked `WaitIntervalInSeconds` (no baking while rolling back), the next batch.
    pub fn advance_rollout(&mut self, current: u32, previous: u32, now: Timestamp) -> RolloutProgress {
        let desired = self.desired_copies;
        let Some(r) = self.rollout.as_mut() else { return RolloutProgress::Done };
        let target = r.target.min(desired);
        if current < target || previous > desired - target {
            return RolloutProgress::Starting;
        }
        let wait = if r.rolling_back.is_some() { 0 } else { r.deployment.policy.wait_interval_secs };
        let baked_at = *r.baked_at.get_or_insert(Timestamp::from_millis(now.millis() + i64::from(wait) * 1000));
        if now < baked_at {
            return RolloutProgress::Baking(baked_at);
        }
        if target >= desired {
            return RolloutProgress::Done;
        }
        r.target = (target + r.batch(desired)).min(desired);
        r.baked_at = None;
        RolloutProgress::NextBatch(r.target)
    }
}

/// The room one instance of a variant offers copies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceCapacity {
    pub cores: f64,
    pub memory_mb: u64,
}

impl InstanceCapacity {
    pub fn of(instance_type: &str) -> InstanceCapacity {
        InstanceCapacity { cores: f64::from(crate::instance_vcpus(instance_type)), memory_mb: crate::instance_memory_mib(instance_type) }
    }

    /// Whether one copy of `r` fits an empty instance.
    pub fn holds(&self, r: &ComputeRequirements) -> bool {
        r.cores() <= self.cores + 1e-9 && r.min_memory_mb <= self.memory_mb
    }
}

/// A component as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementDemand {
    pub component: String,
    pub requirements: ComputeRequirements,
    /// Copies wanted (0 for a component being deleted or failed).
    pub desired: u32,
    pub generation: u32,
}

/// A running copy: its component, the instance it is on, its generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningCopy {
    pub component: String,
    pub instance: u32,
    pub generation: u32,
    /// Its id among the copies (whatever the caller uses to find the copy again).
    pub id: String,
}

/// A copy placement starts: of which component and revision, on which instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCopy {
    pub component: String,
    pub generation: u32,
    pub instance: u32,
}

/// What placement decides for one variant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlacementPlan {
    /// The variant's instances after the plan (ids, ascending).
    pub instances: Vec<u32>,
    /// Copies to start.
    pub start: Vec<NewCopy>,
    /// Running copies to stop (their ids): surplus, stale generations, or deleted components.
    pub stop: Vec<String>,
    /// Copies that find no room: (component, count).
    pub waiting: Vec<(String, u32)>,
}

impl PlacementPlan {
    pub fn waiting_for(&self, component: &str) -> u32 {
        self.waiting.iter().filter(|(c, _)| c == component).map(|(_, n)| *n).sum()
    }
}

/// Places `demands` (oldest component first: older components keep their room) on a variant's
/// `instances`, given the copies running now. A demand is a component's copies of one
/// generation (a rolling update asks for two). Running copies stay where they are; copies of
/// a generation no demand names, of components no longer wanted, and beyond a demand's count
/// are stopped (surplus from the instance holding most of that component's copies, newest
/// instance first); each missing copy goes to the instance with room holding fewest copies of
/// its component (then the least used, then the oldest): copies spread over instances. With
/// managed scaling (`range`), an instance is added when a copy finds no room and the maximum
/// allows, and instances left empty are released down to the minimum.
pub fn place(
    capacity: InstanceCapacity,
    instances: &[u32],
    range: Option<(u32, u32)>,
    demands: &[PlacementDemand],
    running: &[RunningCopy],
) -> PlacementPlan {
    let mut plan = PlacementPlan { instances: instances.to_vec(), ..PlacementPlan::default() };
    plan.instances.sort_unstable();
    let mut next_id = plan.instances.iter().max().map_or(1, |m| m + 1);
    // What stays: copies of wanted generations, up to their counts.
    let mut kept: Vec<RunningCopy> = Vec::new();
    for d in demands {
        let mut mine: Vec<&RunningCopy> = running.iter().filter(|c| c.component == d.component && c.generation == d.generation).collect();
        while mine.len() > d.desired as usize {
            // Surplus: from the instance with most of this component's copies, newest first.
            let count = |i: u32| mine.iter().filter(|c| c.instance == i).count();
            let worst = mine.iter().enumerate().max_by_key(|(_, c)| (count(c.instance), c.instance)).map(|(i, _)| i).unwrap_or(0);
            plan.stop.push(mine.remove(worst).id.clone());
        }
        kept.extend(mine.into_iter().cloned());
    }
    for c in running {
        if !kept.iter().any(|k| k.id == c.id) && !plan.stop.contains(&c.id) {
            plan.stop.push(c.id.clone());
        }
    }
    // Placed copies: (demand index, instance).
    let index = |component: &str, generation: u32| demands.iter().position(|d| d.component == component && d.generation == generation);
    let used = |placed: &[(usize, u32)], instance: u32| {
        placed
            .iter()
            .filter(|(_, i)| *i == instance)
            .map(|(d, _)| demands[*d].requirements)
            .fold((0.0, 0u64), |(cores, mem), r| (cores + r.cores(), mem + r.min_memory_mb))
    };
    let mut placed: Vec<(usize, u32)> = kept.iter().filter_map(|c| Some((index(&c.component, c.generation)?, c.instance))).collect();
    for (n, d) in demands.iter().enumerate() {
        let have = placed.iter().filter(|(k, _)| *k == n).count() as u32;
        let same_component = |k: usize| demands[k].component == d.component;
        let mut waiting = 0;
        for _ in have..d.desired {
            let fits = |instance: u32, placed: &[(usize, u32)]| {
                let (cores, mem) = used(placed, instance);
                cores + d.requirements.cores() <= capacity.cores + 1e-9 && mem + d.requirements.min_memory_mb <= capacity.memory_mb
            };
            let best = plan.instances.iter().copied().filter(|i| fits(*i, &placed)).min_by(|a, b| {
                let key = |i: u32| {
                    let mine = placed.iter().filter(|(k, at)| same_component(*k) && *at == i).count();
                    let (cores, mem) = used(&placed, i);
                    (mine, cores, mem)
                };
                let (ka, kb) = (key(*a), key(*b));
                ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(ka.2.cmp(&kb.2)).then(a.cmp(b))
            });
            let at = match best {
                Some(i) => Some(i),
                None if range.is_some_and(|(_, max)| (plan.instances.len() as u32) < max) && capacity.holds(&d.requirements) => {
                    plan.instances.push(next_id);
                    next_id += 1;
                    Some(next_id - 1)
                }
                None => None,
            };
            match at {
                Some(i) => {
                    placed.push((n, i));
                    plan.start.push(NewCopy { component: d.component.clone(), generation: d.generation, instance: i });
                }
                None => waiting += 1,
            }
        }
        if waiting > 0 {
            plan.waiting.push((d.component.clone(), waiting));
        }
    }
    if let Some((min, _)) = range {
        // Release empty instances, newest first, down to the minimum.
        while plan.instances.len() as u32 > min {
            let Some(empty) = plan.instances.iter().rev().copied().find(|i| !placed.iter().any(|(_, at)| at == i)) else { break };
            plan.instances.retain(|i| *i != empty);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CapacitySize, CapacityUnit};

    fn demand(name: &str, cores: f64, mem: u64, desired: u32) -> PlacementDemand {
        PlacementDemand {
            component: name.into(),
            requirements: ComputeRequirements { cpu_cores: Some(cores), min_memory_mb: mem, max_memory_mb: None },
            desired,
            generation: 0,
        }
    }

    fn running(plan: &PlacementPlan) -> Vec<RunningCopy> {
        plan.start
            .iter()
            .enumerate()
            .map(|(n, c)| RunningCopy {
                component: c.component.clone(),
                instance: c.instance,
                generation: c.generation,
                id: format!("{}-{}-{n}", c.component, c.generation),
            })
            .collect()
    }

    fn starts(plan: &PlacementPlan) -> Vec<(&str, u32)> {
        plan.start.iter().map(|c| (c.component.as_str(), c.instance)).collect()
    }

    const LARGE: InstanceCapacity = InstanceCapacity { cores: 2.0, memory_mb: 8192 };

    #[test]
    fn two_components_share_an_instance_and_a_third_waits_or_gets_a_new_one() {
        let demands = vec![demand("a", 1.0, 1024, 1), demand("b", 1.0, 1024, 1)];
        let plan = place(LARGE, &[1], None, &demands, &[]);
        assert_eq!(starts(&plan), vec![("a", 1), ("b", 1)]);
        let now = running(&plan);
        let three = [demands.clone(), vec![demand("c", 1.0, 1024, 1)]].concat();
        let fixed = place(LARGE, &[1], None, &three, &now);
        assert_eq!((fixed.start.len(), fixed.waiting.clone()), (0, vec![("c".to_string(), 1)]), "no room, no scaling: c waits");
        let scaled = place(LARGE, &[1], Some((1, 2)), &three, &now);
        assert_eq!(scaled.instances, vec![1, 2]);
        assert_eq!(starts(&scaled), vec![("c", 2)]);
        assert!(scaled.stop.is_empty() && scaled.waiting.is_empty());
    }

    #[test]
    fn copies_spread_and_memory_counts() {
        let plan = place(LARGE, &[1, 2], None, &[demand("a", 0.5, 3000, 3)], &[]);
        let on = |i| plan.start.iter().filter(|c| c.instance == i).count();
        assert_eq!((on(1), on(2)), (2, 1), "spread first, then the least used");
        let full = place(LARGE, &[1], None, &[demand("a", 0.25, 3000, 3)], &[]);
        assert_eq!((full.start.len(), full.waiting_for("a")), (2, 1), "memory runs out before cores");
    }

    #[test]
    fn scaling_in_stops_surplus_and_releases_empty_instances_to_the_minimum() {
        let demands = vec![demand("a", 2.0, 1024, 3)];
        let plan = place(LARGE, &[1], Some((1, 4)), &demands, &[]);
        assert_eq!(plan.instances, vec![1, 2, 3]);
        let now = running(&plan);
        let smaller = place(LARGE, &plan.instances, Some((1, 4)), &[demand("a", 2.0, 1024, 1)], &now);
        assert_eq!(smaller.stop.len(), 2);
        assert_eq!(smaller.instances, vec![1], "the newest instances were the surplus and are released");
        let zero = place(LARGE, &plan.instances, Some((0, 4)), &[demand("a", 2.0, 1024, 0)], &now);
        assert!(zero.instances.is_empty() && zero.stop.len() == 3);
    }

    #[test]
    fn a_new_generation_replaces_every_copy_and_a_deleted_component_is_stopped() {
        let plan = place(LARGE, &[1], None, &[demand("a", 1.0, 1024, 2)], &[]);
        let now = running(&plan);
        let mut next = demand("a", 1.0, 1024, 2);
        next.generation = 1;
        let replaced = place(LARGE, &[1], None, &[next], &now);
        assert_eq!((replaced.start.len(), replaced.stop.len()), (2, 2), "the old copies' room is the new ones'");
        let gone = place(LARGE, &[1], None, &[], &now);
        assert_eq!(gone.stop.len(), 2);
    }

    #[test]
    fn a_copy_bigger_than_an_instance_never_adds_instances() {
        let plan = place(LARGE, &[1], Some((1, 5)), &[demand("huge", 4.0, 1024, 1)], &[]);
        assert_eq!((plan.instances.clone(), plan.waiting_for("huge")), (vec![1], 1));
        assert!(!LARGE.holds(&demand("huge", 4.0, 1024, 1).requirements));
    }
    fn component(desired: u32) -> InferenceComponent {
        InferenceComponent {
            name: "a".into(),
            arn: "arn".into(),
            endpoint_name: "e".into(),
            variant_name: "AllTraffic".into(),
            created: Timestamp::from_millis(0),
            modified: Timestamp::from_millis(0),
            status: ComponentStatus::InService,
            failure_reason: None,
            model_name: Some("v1".into()),
            container: ContainerSpec::new("image", None),
            own_container: false,
            requirements: ComputeRequirements { cpu_cores: Some(0.5), min_memory_mb: 1024, max_memory_mb: None },
            download_timeout_secs: None,
            startup_timeout_secs: None,
            desired_copies: desired,
            current_copies: desired,
            generation: 0,
            network_isolation: false,
            generations: 0,
            last_deployment: None,
            rollout: None,
        }
    }

    /// The copies running after `plan` is carried out.
    fn carry_out(plan: &PlacementPlan, before: &[RunningCopy], step: usize) -> Vec<RunningCopy> {
        let mut after: Vec<RunningCopy> = before.iter().filter(|c| !plan.stop.contains(&c.id)).cloned().collect();
        after.extend(plan.start.iter().enumerate().map(|(n, c)| RunningCopy {
            component: c.component.clone(),
            instance: c.instance,
            generation: c.generation,
            id: format!("{step}-{n}"),
        }));
        after
    }

    fn of(running: &[RunningCopy], generation: u32) -> u32 {
        running.iter().filter(|c| c.generation == generation).count() as u32
    }

    fn update_to_v2(c: &mut InferenceComponent, batch: CapacitySize, wait: u32) {
        let from = c.revision();
        c.generation = c.next_generation();
        c.model_name = Some("v2".into());
        let policy = RollingPolicy { max_batch: batch, wait_interval_secs: wait, max_execution_secs: None, rollback_max_batch: None };
        c.start_rollout(from, ComponentDeployment { policy, rollback_alarms: vec!["errors".into()] }, Timestamp::from_millis(0));
    }

    #[test]
    fn a_rolling_update_replaces_copies_a_batch_at_a_time_and_bakes_each() {
        let mut c = component(4);
        let mut now = carry_out(&place(LARGE, &[1, 2], None, &c.demands(), &[]), &[], 0);
        update_to_v2(&mut c, CapacitySize { unit: CapacityUnit::CapacityPercent, value: 50 }, 10);
        assert_eq!(c.demands().iter().map(|d| (d.generation, d.desired)).collect::<Vec<_>>(), vec![(0, 2), (1, 2)]);
        let first = place(LARGE, &[1, 2], None, &c.demands(), &now);
        assert_eq!((first.start.len(), first.stop.len()), (2, 2), "a batch: two new copies, two old ones stop");
        assert!(first.start.iter().all(|n| n.generation == 1));
        now = carry_out(&first, &now, 1);
        let at = |s: i64| Timestamp::from_millis(s * 1000);
        assert_eq!(c.advance_rollout(of(&now, 1), of(&now, 0), at(5)), RolloutProgress::Baking(at(15)));
        assert_eq!(c.advance_rollout(of(&now, 1), of(&now, 0), at(14)), RolloutProgress::Baking(at(15)));
        assert_eq!(c.advance_rollout(of(&now, 1), of(&now, 0), at(15)), RolloutProgress::NextBatch(4));
        assert_eq!(c.advance_rollout(of(&now, 1), of(&now, 0), at(16)), RolloutProgress::Starting);
        now = carry_out(&place(LARGE, &[1, 2], None, &c.demands(), &now), &now, 2);
        assert_eq!((of(&now, 0), of(&now, 1)), (0, 4));
        assert_eq!(c.advance_rollout(4, 0, at(16)), RolloutProgress::Baking(at(26)));
        assert_eq!(c.advance_rollout(4, 0, at(26)), RolloutProgress::Done);
    }

    #[test]
    fn a_rollback_restores_the_earlier_revision_all_at_once_and_keeps_generations_new() {
        let mut c = component(4);
        let mut now = carry_out(&place(LARGE, &[1, 2], None, &c.demands(), &[]), &[], 0);
        update_to_v2(&mut c, CapacitySize { unit: CapacityUnit::InstanceCount, value: 1 }, 60);
        now = carry_out(&place(LARGE, &[1, 2], None, &c.demands(), &now), &now, 1);
        assert_eq!((of(&now, 0), of(&now, 1)), (3, 1));
        c.roll_back("alarm errors in ALARM".into(), of(&now, 0));
        assert_eq!((c.generation, c.model_name.as_deref()), (0, Some("v1")));
        assert_eq!(c.rollout.as_ref().map(|r| (r.from.generation, r.target)), Some((1, 4)));
        let back = place(LARGE, &[1, 2], None, &c.demands(), &now);
        assert_eq!((back.start.len(), back.stop.len()), (1, 1), "the one new copy goes, one old one comes back");
        now = carry_out(&back, &now, 2);
        assert_eq!(
            c.advance_rollout(of(&now, 0), of(&now, 1), Timestamp::from_millis(0)),
            RolloutProgress::Done,
            "no baking on the way back"
        );
        assert_eq!(c.next_generation(), 2, "the failed revision's number is not given again");
    }

    #[test]
    fn a_copy_of_either_revision_starts_with_that_revisions_specification() {
        let mut c = component(2);
        update_to_v2(&mut c, CapacitySize { unit: CapacityUnit::InstanceCount, value: 1 }, 0);
        assert_eq!(c.at_generation(0).and_then(|o| o.model_name), Some("v1".into()));
        assert_eq!(c.at_generation(1).and_then(|o| o.model_name), Some("v2".into()));
        assert!(c.at_generation(7).is_none());
        c.status = ComponentStatus::Deleting;
        assert_eq!(c.demands().iter().map(|d| d.desired).sum::<u32>(), 0, "a deleted component wants no copy of either");
    }
}
