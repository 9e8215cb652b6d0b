//! Inference components: models placed on an endpoint variant's instances as copies, each copy
//! taking the cores and memory its component declares, and the placement that decides which
//! instance runs which copy, which copies wait for room, and how many instances the variant's
//! managed instance scaling keeps.

use crate::{ContainerSpec, Timestamp};
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

/// What placement decides for one variant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlacementPlan {
    /// The variant's instances after the plan (ids, ascending).
    pub instances: Vec<u32>,
    /// Copies to start: (component, instance).
    pub start: Vec<(String, u32)>,
    /// Running copies to stop (their ids): surplus, stale generations, or deleted components.
    pub stop: Vec<String>,
    /// Copies that find no room: (component, count).
    pub waiting: Vec<(String, u32)>,
}

impl PlacementPlan {
    pub fn waiting_for(&self, component: &str) -> u32 {
        self.waiting.iter().find(|(c, _)| c == component).map_or(0, |(_, n)| *n)
    }
}

/// Places `demands` (oldest component first: older components keep their room) on a variant's
/// `instances`, given the copies running now. Running copies stay where they are; copies of
/// an older generation, of components no longer wanted, and beyond a component's count are
/// stopped (surplus from the instance holding most of that component's copies, newest
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
    // What stays: current-generation copies of wanted components, up to their counts.
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
    let requirement = |component: &str| demands.iter().find(|d| d.component == component).map(|d| d.requirements);
    let used = |placed: &[(String, u32)], instance: u32| {
        placed
            .iter()
            .filter(|(_, i)| *i == instance)
            .filter_map(|(c, _)| requirement(c))
            .fold((0.0, 0u64), |(cores, mem), r| (cores + r.cores(), mem + r.min_memory_mb))
    };
    let mut placed: Vec<(String, u32)> = kept.iter().map(|c| (c.component.clone(), c.instance)).collect();
    for d in demands {
        let have = placed.iter().filter(|(c, _)| *c == d.component).count() as u32;
        let mut waiting = 0;
        for _ in have..d.desired {
            let fits = |instance: u32, placed: &[(String, u32)]| {
                let (cores, mem) = used(placed, instance);
                cores + d.requirements.cores() <= capacity.cores + 1e-9 && mem + d.requirements.min_memory_mb <= capacity.memory_mb
            };
            let best = plan.instances.iter().copied().filter(|i| fits(*i, &placed)).min_by(|a, b| {
                let key = |i: u32| {
                    let mine = placed.iter().filter(|(c, at)| *c == d.component && *at == i).count();
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
                    placed.push((d.component.clone(), i));
                    plan.start.push((d.component.clone(), i));
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
            .map(|(n, (c, i))| RunningCopy { component: c.clone(), instance: *i, generation: 0, id: format!("{c}-{n}") })
            .collect()
    }

    const LARGE: InstanceCapacity = InstanceCapacity { cores: 2.0, memory_mb: 8192 };

    #[test]
    fn two_components_share_an_instance_and_a_third_waits_or_gets_a_new_one() {
        let demands = vec![demand("a", 1.0, 1024, 1), demand("b", 1.0, 1024, 1)];
        let plan = place(LARGE, &[1], None, &demands, &[]);
        assert_eq!(plan.start, vec![("a".to_string(), 1), ("b".to_string(), 1)]);
        let now = running(&plan);
        let three = [demands.clone(), vec![demand("c", 1.0, 1024, 1)]].concat();
        let fixed = place(LARGE, &[1], None, &three, &now);
        assert_eq!((fixed.start.len(), fixed.waiting.clone()), (0, vec![("c".to_string(), 1)]), "no room, no scaling: c waits");
        let scaled = place(LARGE, &[1], Some((1, 2)), &three, &now);
        assert_eq!(scaled.instances, vec![1, 2]);
        assert_eq!(scaled.start, vec![("c".to_string(), 2)]);
        assert!(scaled.stop.is_empty() && scaled.waiting.is_empty());
    }

    #[test]
    fn copies_spread_and_memory_counts() {
        let plan = place(LARGE, &[1, 2], None, &[demand("a", 0.5, 3000, 3)], &[]);
        let on = |i| plan.start.iter().filter(|(_, at)| *at == i).count();
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
}
