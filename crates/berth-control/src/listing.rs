//! Filtering, sorting and pagination shared by the List* operations.

use crate::ControlError;
use berth_domain::{
    Endpoint, EndpointConfig, EndpointStatus, Model, MonitoringExecution, MonitoringJobDefinition, MonitoringSchedule, ProcessingJob,
    Timestamp, TransformJob,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    Name,
    #[default]
    CreationTime,
    Status,
}

/// A List* request. SageMaker's defaults: newest first, 10 per page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub name_contains: Option<String>,
    pub status_equals: Option<EndpointStatus>,
    pub sort_by: SortKey,
    pub ascending: bool,
    pub next_token: Option<String>,
    pub max_results: Option<u32>,
    /// `CreationTimeAfter`, `CreationTimeBefore`.
    pub created: TimeWindow,
    /// `LastModifiedTimeAfter`, `LastModifiedTimeBefore`.
    pub modified: TimeWindow,
}

/// A List* filter on a time: strictly after `after` and strictly before `before`, each when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub after: Option<Timestamp>,
    pub before: Option<Timestamp>,
}

impl TimeWindow {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.after.is_none_or(|a| t > a) && self.before.is_none_or(|b| t < b)
    }
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

const DEFAULT_PAGE: usize = 10;
const MAX_PAGE: u32 = 100;
const TOKEN_PREFIX: &str = "berth-page-";

/// What listing reads of a resource: its name, times, and status (to filter by, and as sorted).
pub(crate) struct Listed<'a> {
    name: &'a str,
    created: Timestamp,
    modified: Timestamp,
    status: Option<EndpointStatus>,
    status_name: Option<&'static str>,
}

impl<'a> Listed<'a> {
    /// A resource with a name and a creation time only.
    fn named(name: &'a str, created: Timestamp) -> Self {
        Listed { name, created, modified: created, status: None, status_name: None }
    }
}

pub(crate) trait Listable {
    fn listed(&self) -> Listed<'_>;
}

impl Listable for Model {
    fn listed(&self) -> Listed<'_> {
        Listed::named(&self.name, self.created)
    }
}

impl Listable for EndpointConfig {
    fn listed(&self) -> Listed<'_> {
        Listed::named(&self.name, self.created)
    }
}

impl Listable for Endpoint {
    fn listed(&self) -> Listed<'_> {
        let status = Some(self.status);
        Listed { modified: self.modified, status, status_name: status.map(|s| s.as_str()), ..Listed::named(&self.name, self.created) }
    }
}

impl Listable for TransformJob {
    fn listed(&self) -> Listed<'_> {
        Listed { modified: self.modified, status_name: Some(self.status.as_str()), ..Listed::named(&self.name, self.created) }
    }
}

impl Listable for ProcessingJob {
    fn listed(&self) -> Listed<'_> {
        Listed { modified: self.modified, status_name: Some(self.status.as_str()), ..Listed::named(&self.name, self.created) }
    }
}

impl Listable for berth_domain::ModelPackageGroup {
    fn listed(&self) -> Listed<'_> {
        Listed::named(&self.name, self.created)
    }
}

impl Listable for berth_domain::ModelPackage {
    fn listed(&self) -> Listed<'_> {
        Listed { modified: self.modified, ..Listed::named(&self.name, self.created) }
    }
}

impl Listable for berth_domain::InferenceComponent {
    fn listed(&self) -> Listed<'_> {
        Listed { modified: self.modified, status_name: Some(self.status.as_str()), ..Listed::named(&self.name, self.created) }
    }
}

/// A page of inference components (already filtered by endpoint and variant).
pub fn list_inference_components(
    components: Vec<berth_domain::InferenceComponent>,
    q: &ListQuery,
) -> Result<Page<berth_domain::InferenceComponent>, ControlError> {
    page(components, q)
}

impl Listable for berth_domain::RecommendationJob {
    fn listed(&self) -> Listed<'_> {
        Listed { modified: self.modified, status_name: Some(self.status.as_str()), ..Listed::named(&self.name, self.created) }
    }
}

impl Listable for MonitoringJobDefinition {
    fn listed(&self) -> Listed<'_> {
        Listed::named(&self.name, self.created)
    }
}

impl Listable for MonitoringSchedule {
    fn listed(&self) -> Listed<'_> {
        Listed { modified: self.modified, status_name: Some(self.status.as_str()), ..Listed::named(&self.name, self.created) }
    }
}

/// An execution sorts by its scheduled time as `CreationTime` (ListMonitoringExecutions'
/// `ScheduledTime`), by its creation time under `Name` (it has no name of its own).
impl Listable for MonitoringExecution {
    fn listed(&self) -> Listed<'_> {
        Listed {
            modified: self.modified,
            status_name: Some(self.status.as_str()),
            ..Listed::named(&self.processing_job_name, self.scheduled)
        }
    }
}

/// A page of monitoring job definitions, schedules or executions (already filtered by what `q`
/// cannot carry).
pub fn list_monitoring<T: MonitoringListed>(items: Vec<T>, q: &ListQuery) -> Result<Page<T>, ControlError> {
    page(items, q)
}

/// The monitoring records a page is made of.
#[allow(private_bounds)]
pub trait MonitoringListed: Listable {}
impl MonitoringListed for MonitoringJobDefinition {}
impl MonitoringListed for MonitoringSchedule {}
impl MonitoringListed for MonitoringExecution {}

/// A page of processing jobs (already filtered by their own status, which `q` cannot carry).
pub fn list_processing_jobs(jobs: Vec<ProcessingJob>, q: &ListQuery) -> Result<Page<ProcessingJob>, ControlError> {
    page(jobs, q)
}

/// A page of the registry's groups or packages (already filtered by what `q` cannot carry).
pub fn list_registry<T: RegistryListed>(items: Vec<T>, q: &ListQuery) -> Result<Page<T>, ControlError> {
    page(items, q)
}

/// The registry records a page is made of.
#[allow(private_bounds)]
pub trait RegistryListed: Listable {}
impl RegistryListed for berth_domain::ModelPackageGroup {}
impl RegistryListed for berth_domain::ModelPackage {}

/// A page of inference recommendations jobs (already filtered by status and model).
pub fn list_recommendation_jobs(
    jobs: Vec<berth_domain::RecommendationJob>,
    q: &ListQuery,
) -> Result<Page<berth_domain::RecommendationJob>, ControlError> {
    page(jobs, q)
}

/// A page of transform jobs (already filtered by their own status, which `q` cannot carry).
pub fn list_transform_jobs(jobs: Vec<TransformJob>, q: &ListQuery) -> Result<Page<TransformJob>, ControlError> {
    page(jobs, q)
}

pub(crate) fn page<T: Listable>(mut items: Vec<T>, q: &ListQuery) -> Result<Page<T>, ControlError> {
    let limit = match q.max_results {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n as usize,
        Some(n) => {
            return Err(ControlError::Validation(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {MAX_PAGE}"
            )))
        }
    };
    let offset = match &q.next_token {
        None => 0,
        Some(t) => t
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ControlError::Validation(format!("Invalid pagination token '{t}'.")))?,
    };
    let needle = q.name_contains.as_ref().map(|n| n.to_ascii_lowercase());
    items.retain(|it| {
        let it = it.listed();
        needle.as_ref().is_none_or(|n| it.name.to_ascii_lowercase().contains(n.as_str()))
            && q.status_equals.is_none_or(|s| it.status == Some(s))
            && q.created.contains(it.created)
            && q.modified.contains(it.modified)
    });
    items.sort_by(|a, b| {
        let (a, b) = (a.listed(), b.listed());
        let by_name = || a.name.cmp(b.name);
        let ord = match q.sort_by {
            SortKey::Name => by_name(),
            SortKey::CreationTime => a.created.cmp(&b.created).then_with(by_name),
            SortKey::Status => a.status_name.cmp(&b.status_name).then_with(by_name),
        };
        if q.ascending {
            ord
        } else {
            ord.reverse()
        }
    });
    let total = items.len();
    let items: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let next = offset + items.len();
    let next_token = (next < total).then(|| format!("{TOKEN_PREFIX}{next}"));
    Ok(Page { items, next_token })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(&'static str, i64);
    impl Listable for Item {
        fn listed(&self) -> Listed<'_> {
            Listed::named(self.0, Timestamp::from_millis(self.1))
        }
    }

    fn names(p: &Page<Item>) -> Vec<&str> {
        p.items.iter().map(|i| i.0).collect()
    }

    fn items() -> Vec<Item> {
        vec![Item("b-model", 2), Item("a-model", 1), Item("c-other", 3)]
    }

    #[test]
    fn default_is_newest_first() {
        let p = page(items(), &ListQuery::default()).unwrap();
        assert_eq!(names(&p), ["c-other", "b-model", "a-model"]);
        assert!(p.next_token.is_none());
    }

    #[test]
    fn pages_follow_tokens_to_the_end() {
        let q = ListQuery { max_results: Some(2), sort_by: SortKey::Name, ascending: true, ..Default::default() };
        let p1 = page(items(), &q).unwrap();
        assert_eq!(names(&p1), ["a-model", "b-model"]);
        let p2 = page(items(), &ListQuery { next_token: p1.next_token, ..q.clone() }).unwrap();
        assert_eq!(names(&p2), ["c-other"]);
        assert!(p2.next_token.is_none());
    }

    #[test]
    fn filters_apply_before_paging() {
        let q = ListQuery {
            name_contains: Some("MODEL".into()),
            created: TimeWindow { after: Some(Timestamp::from_millis(1)), before: None },
            ..Default::default()
        };
        assert_eq!(names(&page(items(), &q).unwrap()), ["b-model"]);
    }

    #[test]
    fn bad_tokens_and_sizes_are_refused() {
        assert!(page(items(), &ListQuery { next_token: Some("x".into()), ..Default::default() }).is_err());
        assert!(page(items(), &ListQuery { max_results: Some(101), ..Default::default() }).is_err());
    }
}
