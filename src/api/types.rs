//! Kubernetes object types (batch/v1 Job, core/v1 Pod) with Kubernetes' JSON field names.
//!
//! Only the fields wasmjob understands are typed. Every struct that a manifest fills keeps the
//! rest in `other`, so validation can name each unsupported field instead of ignoring it.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

/// Fields of a manifest object that wasmjob has no typed slot for.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// Labels or annotations.
pub type StringMap = BTreeMap<String, String>;

/// A string that is mostly one of a few constants (a phase, a reason, `v1`): the host sets
/// them without allocating; objects read back own theirs.
pub type Text = std::borrow::Cow<'static, str>;

/// `metadata` of every object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name, unique per kind and namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Prefix for a generated name (shared by a Job's pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<Arc<str>>,
    /// Namespace; `default` when unset (shared by a Job's pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Arc<str>>,
    /// Unique id assigned at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Labels, shared with the objects that copy them (a Job's pods share their template's:
    /// a clone is a reference count, not a map of strings per pod).
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub labels: Arc<StringMap>,
    /// Annotations, shared as labels are.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub annotations: Arc<StringMap>,
    /// When the object was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Timestamp>,
    /// The controller that owns this object (shared by all pods of a Job).
    #[serde(default, skip_serializing_if = "is_empty_list")]
    pub owner_references: Arc<Vec<OwnerReference>>,
    /// Set when the object is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Timestamp>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

fn is_empty_map(m: &Arc<StringMap>) -> bool {
    m.is_empty()
}

fn is_empty_list<T>(v: &Arc<Vec<T>>) -> bool {
    v.is_empty()
}

/// A reference from a Pod to the Job that owns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// `batch/v1`.
    pub api_version: String,
    /// `Job`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// Always true: the Job controls its pods.
    pub controller: bool,
    /// Always true, as Kubernetes sets it for Job pods.
    pub block_owner_deletion: bool,
}

/// A `batch/v1` Job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// `batch/v1`.
    pub api_version: String,
    /// `Job`.
    pub kind: String,
    /// Name, labels, uid.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to run.
    #[serde(default)]
    pub spec: JobSpec,
    /// What happened; the manifest reader drops it, as Kubernetes ignores it on create.
    #[serde(default)]
    pub status: JobStatus,
    /// Other top-level fields.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

impl Job {
    /// The Job's name (empty if the manifest had none, which validation rejects).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The Job's uid, assigned when the host accepts it.
    pub fn uid(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or("")
    }
}

/// `spec` of a Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// Maximum pods running at once; 0 pauses the Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// Successful pods needed; unset makes a work-queue Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    /// Seconds from startTime after which the Job fails with DeadlineExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after the Job finishes before it is deleted with its pods (TTL controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Failures tolerated before the Job fails with BackoffLimitExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// Failures tolerated per index of an Indexed Job before the index fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit_per_index: Option<i32>,
    /// Failed indexes tolerated before the Job fails (with `backoffLimitPerIndex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_indexes: Option<i32>,
    /// How pod failures are handled, rule by rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_failure_policy: Option<PodFailurePolicy>,
    /// When an Indexed Job counts as succeeded before all its indexes have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_policy: Option<SuccessPolicy>,
    /// Selects the Job's pods; generated from the uid unless `manualSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Whether the user provides the selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_selector: Option<bool>,
    /// `NonIndexed` or `Indexed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<String>,
    /// Whether the Job is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// When replacement pods are created: `TerminatingOrFailed` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_replacement_policy: Option<String>,
    /// The controller that runs the Job; only Kubernetes' own (which wasmjob is) may be named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// The pod to run.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// A label selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must all match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: StringMap,
    /// Requirements that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// One requirement of a label selector, e.g. `app In (a, b)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    #[serde(default)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(default)]
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &StringMap) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// `spec.podFailurePolicy`: rules checked in order against each failed pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicy {
    /// The rules; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<PodFailurePolicyRule>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// One rule of a pod failure policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicyRule {
    /// `FailJob`, `FailIndex`, `Ignore` or `Count`.
    #[serde(default)]
    pub action: String,
    /// Matches by the container's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<PodFailurePolicyOnExitCodes>,
    /// Matches by pod conditions (any of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_pod_conditions: Vec<PodFailurePolicyOnPodConditionsPattern>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// `onExitCodes` of a pod failure policy rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicyOnExitCodes {
    /// Only this container's exit code is checked, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// `In` or `NotIn`.
    #[serde(default)]
    pub operator: String,
    /// Exit codes, ascending and unique.
    #[serde(default)]
    pub values: Vec<i32>,
}

/// An `onPodConditions` pattern of a pod failure policy rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodFailurePolicyOnPodConditionsPattern {
    /// Condition type, e.g. `DisruptionTarget`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Condition status; `True` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `spec.successPolicy` of an Indexed Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuccessPolicy {
    /// The rules; the Job succeeds when any matches.
    #[serde(default)]
    pub rules: Vec<SuccessPolicyRule>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// One rule of a success policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuccessPolicyRule {
    /// Indexes that must succeed, e.g. `"0,2-4"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_indexes: Option<String>,
    /// How many (of `succeededIndexes`, or of all) must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_count: Option<i32>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// `spec.template` of a Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    /// Labels and annotations copied onto each pod.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The pod (shared with every pod made from it).
    #[serde(default)]
    pub spec: Arc<PodSpec>,
}

/// A pod's spec: one Wasm container and its volumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// The containers; the first (and only) one is the Wasm module.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// `Never` or `OnFailure` for Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// Volumes the container may mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Accepted for compatibility; a Wasm pod is stopped at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// A container: the Wasm module, its argv, environment and mounts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Container name; argv[0] of the module.
    #[serde(default)]
    pub name: String,
    /// Path of the `.wasm` module, relative to the manifest.
    #[serde(default)]
    pub image: String,
    /// First arguments after argv[0].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments after `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Working directory; must lie inside a volume mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Directories preopened for the module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// `limits.memory` caps linear memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Accepted for compatibility; modules are files, never pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// An environment variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A value taken from the pod (`fieldRef` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A field of the pod, e.g. `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// A field of the pod, for `valueFrom.fieldRef`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldSelector {
    /// Defaults to `v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `metadata.name`, `metadata.namespace`, `metadata.uid`, `metadata.labels['k']`,
    /// `metadata.annotations['k']`.
    pub field_path: String,
}

/// A volume: `emptyDir` or `hostPath`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Volume name, referenced by mounts.
    #[serde(default)]
    pub name: String,
    /// A fresh directory per pod, removed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    /// A directory of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
    /// Other volume types, which wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// `emptyDir` volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDirVolumeSource {
    /// `""` (disk) or `Memory`: both are a host temporary directory here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// Fields wasmjob does not support (e.g. `sizeLimit`).
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// `hostPath` volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPathVolumeSource {
    /// Host directory; a relative path is relative to the manifest.
    pub path: String,
    /// `""`, `Directory` or `DirectoryOrCreate`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// A volume mounted into the container: a WASI preopened directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// Name of a volume of the pod.
    #[serde(default)]
    pub name: String,
    /// Absolute path the module sees.
    #[serde(default)]
    pub mount_path: String,
    /// Read-only preopen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Fields wasmjob does not support (e.g. `subPath`).
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// `resources` of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    /// `memory` caps linear memory; `cpu` is accepted (a pod uses at most one core).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
    /// Accepted and recorded; wasmjob does not schedule by requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// A Kubernetes quantity such as `64Mi` or `500m`, kept as written (YAML numbers too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(i64),
            F(f64),
        }
        Ok(Quantity(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::I(i) => i.to_string(),
            Raw::F(f) => f.to_string(),
        }))
    }
}

/// `status` of a Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Conditions in the order they were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,
    /// When the Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// When the Job completed (only for `Complete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Timestamp>,
    /// Pods pending or running, not terminating.
    pub active: i32,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// Pods being terminated.
    pub terminating: i32,
    /// Active pods whose container is running.
    pub ready: i32,
    /// Completed indexes of an Indexed Job, compressed (`"1,3-5,7"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_indexes: Option<String>,
    /// Failed indexes of a Job with `backoffLimitPerIndex`, compressed like `completedIndexes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_indexes: Option<String>,
}

impl JobStatus {
    /// The condition of the given type, if set.
    pub fn condition(&self, type_: &str) -> Option<&JobCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The terminal condition (`Complete` or `Failed`), if the Job has finished.
    pub fn finished(&self) -> Option<&JobCondition> {
        self.conditions
            .iter()
            .find(|c| c.type_ == COMPLETE || c.type_ == FAILED)
    }
}

/// Condition type of a suspended Job (`False` again once resumed).
pub const SUSPENDED: &str = "Suspended";
/// Condition type of a Job that succeeded.
pub const COMPLETE: &str = "Complete";
/// Condition type of a Job that failed.
pub const FAILED: &str = "Failed";
/// Condition type added before `Failed` while pods terminate.
pub const FAILURE_TARGET: &str = "FailureTarget";
/// Condition type added before `Complete` while pods terminate.
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";

/// A Job condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    /// `Complete`, `Failed`, `FailureTarget`, `SuccessCriteriaMet`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`.
    pub status: String,
    /// When the condition was last checked.
    pub last_probe_time: Timestamp,
    /// When the condition was set.
    pub last_transition_time: Timestamp,
    /// Machine-readable reason, e.g. `BackoffLimitExceeded`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A core/v1 Pod, as the host reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// `v1`.
    pub api_version: Text,
    /// `Pod`.
    pub kind: Text,
    /// Name, labels, owner.
    pub metadata: ObjectMeta,
    /// The Job's pod template spec, shared with the template.
    pub spec: Arc<PodSpec>,
    /// Phase and container state.
    pub status: PodStatus,
}

/// `status` of a Pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    pub phase: Text,
    /// Pod conditions (`DisruptionTarget` for pods the host terminated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
    /// Why the pod is in this phase, e.g. `DeadlineExceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the pod was started by the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// The container's state.
    #[serde(default, skip_serializing_if = "<[ContainerStatus]>::is_empty")]
    pub container_statuses: ContainerStatuses,
}

/// A pod's container statuses: one, kept inside the Pod rather than in an allocation of
/// its own (a wide Job keeps thousands of finished pods, and each allocation a finished pod
/// keeps is fresh memory its successor's run pays for in cache misses).
pub type ContainerStatuses = smallvec::SmallVec<[ContainerStatus; 1]>;

/// A pod condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    /// e.g. `DisruptionTarget`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`.
    pub status: String,
    /// When the condition was set.
    pub last_transition_time: Timestamp,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// The state of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Container name (this and the image are shared by all pods of a Job).
    pub name: Arc<str>,
    /// Current state.
    pub state: ContainerState,
    /// The previous run's state, after a restart (boxed: most pods never restart, and a
    /// finished pod keeps its status for the rest of the run).
    #[serde(default, skip_serializing_if = "no_state")]
    pub last_state: Option<Box<ContainerState>>,
    /// Whether the container is running.
    pub ready: bool,
    /// Restarts in place (restartPolicy OnFailure).
    pub restart_count: i32,
    /// The module path.
    pub image: Arc<str>,
    /// `sha256:` of the module bytes.
    #[serde(rename = "imageID")]
    pub image_id: Arc<str>,
    /// Whether the container has started.
    pub started: bool,
}

fn no_state(s: &Option<Box<ContainerState>>) -> bool {
    s.as_ref().is_none_or(|s| s.is_empty())
}

/// One of waiting, running or terminated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    /// Not running yet (or waiting to restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ContainerStateWaiting>,
    /// Running since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<ContainerStateRunning>,
    /// Finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<ContainerStateTerminated>,
}

impl ContainerState {
    /// Whether no state is set.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_none() && self.running.is_none() && self.terminated.is_none()
    }
}

/// A container waiting to start or restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateWaiting {
    /// e.g. `ContainerCreating`, `CrashLoopBackOff`.
    pub reason: Text,
    /// Detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A running container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateRunning {
    /// When it started.
    pub started_at: Timestamp,
}

/// A finished container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateTerminated {
    /// The module's exit code (137 when killed or out of memory).
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `DeadlineExceeded`...
    pub reason: Text,
    /// Detail, e.g. the trap message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the run started.
    pub started_at: Timestamp,
    /// When the run ended.
    pub finished_at: Timestamp,
}
