//! Reading manifests: files, directories and multi-document YAML into defaulted, validated Jobs.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use sha2::{Digest, Sha256};

use super::cronjob::{CronJob, default_cronjob, validate_cronjob};
use super::defaults::default_job;
use super::field::{ErrorList, FieldError, Path as FieldPath};
use super::names::{is_dns1123_subdomain_shape, is_queue_name};
use super::types::Job;
use super::validation::validate_job;

/// A Job read from a manifest, defaulted and validated.
#[derive(Debug, Clone)]
pub struct JobManifest {
    /// The Job.
    pub job: Job,
    /// Where it came from, e.g. `examples/pi.yaml` or `jobs.yaml#2`.
    pub source: String,
    /// The manifest's directory: relative `image` and `hostPath` paths start here.
    pub base_dir: PathBuf,
}

/// A CronJob read from a manifest, defaulted and validated.
#[derive(Debug, Clone)]
pub struct CronJobManifest {
    /// The CronJob.
    pub cronjob: CronJob,
    /// Where it came from.
    pub source: String,
    /// The manifest's directory.
    pub base_dir: PathBuf,
}

/// The annotation that makes a ConfigMap seed a work queue: its value names the queue and
/// `data.items` holds the items, one per line.
pub const SEED_QUEUE_ANNOTATION: &str = "wasmjob.dev/seed-queue";

/// A ConfigMap that seeds a work queue when its manifest is first run, so that an example is
/// self-contained and still valid Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSeed {
    /// `namespace/name` of the ConfigMap: a queue is seeded once per source and content.
    pub source: String,
    /// The queue.
    pub queue: String,
    /// The items, in order.
    pub items: Vec<String>,
    /// Content hash (queue and items).
    pub hash: String,
    /// Where it came from, e.g. `job-wq-1.yaml#1`.
    pub file: String,
}

/// Everything a set of manifests holds.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Jobs, defaulted and validated.
    pub jobs: Vec<JobManifest>,
    /// Work-queue seeds.
    pub seeds: Vec<QueueSeed>,
    /// CronJobs, defaulted and validated.
    pub cronjobs: Vec<CronJobManifest>,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not YAML/JSON, or not shaped like the object it claims to be.
    #[error("{file}: {message}")]
    Parse {
        /// File (and document number).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A well-formed object that fails validation.
    #[error("{}", Invalid { file, kind, name, errors })]
    Invalid {
        /// File (and document number).
        file: String,
        /// Object kind, e.g. `Job`.
        kind: String,
        /// Object name.
        name: String,
        /// Every problem found.
        errors: ErrorList,
    },
}

/// Formats validation errors the way kubectl prints an API server rejection.
struct Invalid<'a> {
    file: &'a str,
    kind: &'a str,
    name: &'a str,
    errors: &'a ErrorList,
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: The {} {:?} is invalid: ",
            self.file, self.kind, self.name
        )?;
        match self.errors.as_slice() {
            [one] => write!(f, "{one}"),
            many => many.iter().try_for_each(|e| write!(f, "\n* {e}")),
        }
    }
}

/// Reads every Job from the given files and directories (`.yaml`, `.yml`, `.json` files of a
/// directory, in name order). Returns all Jobs, or every error found in any of them.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<JobManifest>, Vec<ManifestError>> {
    load_manifests(paths).map(|m| m.jobs)
}

/// Reads every Job and queue seed from the given files and directories, or every error.
pub fn load_manifests(paths: &[PathBuf]) -> Result<Manifests, Vec<ManifestError>> {
    load_expanded(paths, None)
}

/// A template variable and its values: each file is read once per value, with `$NAME`
/// replaced by it, as the docs' `sed "s/\$ITEM/$i/"` loop does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// The variable, e.g. `ITEM` for `$ITEM`.
    pub name: String,
    /// Its values.
    pub values: Vec<String>,
}

/// Like [`load_manifests`], expanding each file's text once per value of `expand`.
pub fn load_expanded(
    paths: &[PathBuf],
    expand: Option<&Expansion>,
) -> Result<Manifests, Vec<ManifestError>> {
    let mut jobs = Vec::new();
    let mut seeds = Vec::new();
    let mut cronjobs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match manifest_files(path) {
            Ok(files) => {
                for file in files {
                    match std::fs::read_to_string(&file) {
                        Ok(text) => {
                            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
                            let name = file.display().to_string();
                            let texts: Vec<(String, String)> = match expand {
                                None => vec![(name, text)],
                                Some(x) => x
                                    .values
                                    .iter()
                                    .map(|v| {
                                        (
                                            format!("{name}[{}={v}]", x.name),
                                            text.replace(&format!("${}", x.name), v),
                                        )
                                    })
                                    .collect(),
                            };
                            for (source, text) in texts {
                                let (m, e) = parse_manifests(&text, &source, &base);
                                jobs.extend(m.jobs);
                                seeds.extend(m.seeds);
                                cronjobs.extend(m.cronjobs);
                                errors.extend(e);
                            }
                        }
                        Err(source) => errors.push(ManifestError::Io {
                            path: file.display().to_string(),
                            source,
                        }),
                    }
                }
            }
            Err(source) => errors.push(ManifestError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
    for (i, a) in jobs.iter().enumerate() {
        if jobs[..i].iter().any(|b| {
            b.job.name() == a.job.name() && b.job.metadata.namespace == a.job.metadata.namespace
        }) {
            errors.push(ManifestError::Parse {
                file: a.source.clone(),
                message: format!(
                    "jobs.batch {:?} already exists (defined twice)",
                    a.job.name()
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(Manifests {
            jobs,
            seeds,
            cronjobs,
        })
    } else {
        Err(errors)
    }
}

fn manifest_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if p.is_file() && matches!(ext, "yaml" | "yml" | "json") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses the Jobs of one YAML (or JSON) text.
pub fn parse_documents(
    text: &str,
    file: &str,
    base_dir: &Path,
) -> (Vec<JobManifest>, Vec<ManifestError>) {
    let (m, errors) = parse_manifests(text, file, base_dir);
    (m.jobs, errors)
}

/// Parses every document (Jobs and queue seeds) of one YAML (or JSON) text.
pub fn parse_manifests(text: &str, file: &str, base_dir: &Path) -> (Manifests, Vec<ManifestError>) {
    let mut jobs = Vec::new();
    let mut seeds = Vec::new();
    let mut cronjobs = Vec::new();
    let mut errors = Vec::new();
    // Read every document first (their count decides how sources are named). After a syntax
    // error the document stream never ends, so stop at the first one.
    let mut values = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        match serde_json::Value::deserialize(doc) {
            Ok(v) => values.push(Ok(v)),
            Err(e) => {
                values.push(Err(e));
                break;
            }
        }
    }
    let many = values.len() > 1;
    for (i, value) in values.into_iter().enumerate() {
        let source = if many {
            format!("{file}#{}", i + 1)
        } else {
            file.to_string()
        };
        let value = match value {
            Ok(serde_json::Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                errors.push(ManifestError::Parse {
                    file: source,
                    message: format!("not valid YAML: {e}"),
                });
                break;
            }
        };
        if value.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap") {
            match parse_seed(&value, &source) {
                Ok(seed) => seeds.push(seed),
                Err(e) => errors.push(e),
            }
            continue;
        }
        if value.get("kind").and_then(|k| k.as_str()) == Some("CronJob") {
            match parse_cronjob(value, &source) {
                Ok(cronjob) => cronjobs.push(CronJobManifest {
                    cronjob,
                    source,
                    base_dir: base_dir.to_path_buf(),
                }),
                Err(e) => errors.push(e),
            }
            continue;
        }
        match parse_object(value, &source) {
            Ok(mut job) => {
                default_job(&mut job);
                let errs = validate_job(&job);
                if errs.is_empty() {
                    jobs.push(JobManifest {
                        job,
                        source,
                        base_dir: base_dir.to_path_buf(),
                    });
                } else {
                    errors.push(ManifestError::Invalid {
                        file: source,
                        kind: "Job".into(),
                        name: job.name().to_string(),
                        errors: errs,
                    });
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (
        Manifests {
            jobs,
            seeds,
            cronjobs,
        },
        errors,
    )
}

/// A `batch/v1` (or the docs' older `batch/v1beta1`) CronJob, defaulted and validated.
fn parse_cronjob(mut value: serde_json::Value, source: &str) -> Result<CronJob, ManifestError> {
    let err = |message: String| ManifestError::Parse {
        file: source.to_string(),
        message,
    };
    let version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !matches!(version, "batch/v1" | "batch/v1beta1") {
        return Err(err(format!(
            "no matches for kind \"CronJob\" in version {version:?}: use apiVersion batch/v1"
        )));
    }
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
        obj.insert("apiVersion".into(), "batch/v1".into());
    }
    let mut cj: CronJob = serde_path_to_error::deserialize(value)
        .map_err(|e| err(format!("{}: {}", e.path(), e.inner())))?;
    default_cronjob(&mut cj);
    let errors = validate_cronjob(&cj);
    if errors.is_empty() {
        Ok(cj)
    } else {
        Err(ManifestError::Invalid {
            file: source.to_string(),
            kind: "CronJob".into(),
            name: cj.name().to_string(),
            errors,
        })
    }
}

/// A `v1` ConfigMap annotated `wasmjob.dev/seed-queue: QUEUE` with `data.items`.
fn parse_seed(value: &serde_json::Value, source: &str) -> Result<QueueSeed, ManifestError> {
    let err = |message: String| ManifestError::Parse {
        file: source.to_string(),
        message,
    };
    let str_at = |ptr: &str| value.pointer(ptr).and_then(|v| v.as_str());
    if str_at("/apiVersion") != Some("v1") {
        return Err(err("a ConfigMap has apiVersion v1".into()));
    }
    let name = str_at("/metadata/name").unwrap_or("");
    let namespace = str_at("/metadata/namespace").unwrap_or("default");
    let mut errs = ErrorList::new();
    let meta = FieldPath::new("metadata");
    if !is_dns1123_subdomain_shape(name) {
        errs.push(FieldError::invalid(&meta.child("name"), name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
    }
    let annotation = meta.child("annotations").key(SEED_QUEUE_ANNOTATION);
    let queue = value
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SEED_QUEUE_ANNOTATION))
        .and_then(|q| q.as_str());
    let queue = match queue {
        None => {
            return Err(err(format!(
                "ConfigMap {name:?}: wasmjob uses ConfigMaps only to seed work queues; annotate it \
                 {SEED_QUEUE_ANNOTATION}: QUEUE and list the items in data.items"
            )));
        }
        Some(q) if !is_queue_name(q) => {
            errs.push(FieldError::invalid(
                &annotation,
                q,
                "a queue name consists of letters, digits, '-', '_' and '.' (at most 253)",
            ));
            String::new()
        }
        Some(q) => q.to_string(),
    };
    let items = match value.pointer("/data/items") {
        Some(serde_json::Value::String(s)) => s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        _ => {
            errs.push(FieldError::required(
                &FieldPath::new("data").key("items"),
                "the queue's items, one per line",
            ));
            Vec::new()
        }
    };
    if !errs.is_empty() {
        return Err(ManifestError::Invalid {
            file: source.to_string(),
            kind: "ConfigMap".into(),
            name: name.to_string(),
            errors: errs,
        });
    }
    let hash = Sha256::digest(format!("{queue}\n{}", items.join("\n")).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(QueueSeed {
        source: format!("{namespace}/{name}"),
        queue,
        items,
        hash,
        file: source.to_string(),
    })
}

fn parse_object(value: serde_json::Value, source: &str) -> Result<Job, ManifestError> {
    let err = |message: String| ManifestError::Parse {
        file: source.to_string(),
        message,
    };
    let Some(obj) = value.as_object() else {
        return Err(err("expected an object with apiVersion and kind".into()));
    };
    let field = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if kind.is_empty() || api_version.is_empty() {
        return Err(err(
            "Object 'Kind' is missing: apiVersion and kind are required".into(),
        ));
    }
    match (api_version, kind) {
        ("batch/v1", "Job") => {}
        (_, "Job") => {
            return Err(err(format!(
                "no matches for kind \"Job\" in version {api_version:?}: use apiVersion batch/v1"
            )));
        }
        _ => {
            return Err(err(format!(
                "kind {kind:?} ({api_version}) is not supported: wasmjob runs batch/v1 Jobs"
            )));
        }
    }
    // Status is the host's to write: ignored on create, as Kubernetes does.
    let mut value = value;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
    }
    serde_path_to_error::deserialize::<_, Job>(value).map_err(|e| {
        let path = e.path().to_string();
        err(format!("{path}: {}", e.inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<JobManifest>, Vec<String>) {
        let (jobs, errs) = parse_documents(text, "t.yaml", Path::new("."));
        (jobs, errs.iter().map(ToString::to_string).collect())
    }

    const PI: &str = "
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      containers:
      - name: pi
        image: pi.wasm
        args: [\"2000\"]
      restartPolicy: Never
  backoffLimit: 4
";

    #[test]
    fn reads_the_docs_pi_job_with_defaults() {
        let (jobs, errs) = parse(PI);
        assert!(errs.is_empty(), "{errs:?}");
        let spec = &jobs[0].job.spec;
        assert_eq!(jobs[0].job.name(), "pi");
        assert_eq!(spec.backoff_limit, Some(4));
        assert_eq!((spec.completions, spec.parallelism), (Some(1), Some(1)));
        assert_eq!(spec.template.spec.containers[0].args, ["2000"]);
    }

    #[test]
    fn multi_document_files_give_every_job() {
        let two = format!(
            "{PI}---\n{}\n---\n",
            PI.replace("name: pi\nspec", "name: pi2\nspec")
        );
        let (jobs, errs) = parse(&two);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            jobs.iter().map(|j| j.job.name()).collect::<Vec<_>>(),
            ["pi", "pi2"]
        );
        assert_eq!(jobs[1].source, "t.yaml#2");
    }

    #[test]
    fn reports_every_error_with_its_field_path() {
        let bad = PI
            .replace("restartPolicy: Never", "restartPolicy: Always")
            .replace("backoffLimit: 4", "backoffLimit: 4\n  parallelism: -1\n  activeDeadlineSeconds: 0\n  ttlSecondsAfterFinished: -5")
            .replace("name: pi\nspec", "name: Pi\nspec");
        let (jobs, errs) = parse(&bad);
        assert!(jobs.is_empty());
        let msg = &errs[0];
        for want in [
            "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            "metadata.name: Invalid value: \"Pi\": a lowercase RFC 1123 subdomain",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be greater than or equal to 1",
            "spec.ttlSecondsAfterFinished: Invalid value: -5: must be greater than or equal to 0",
        ] {
            assert!(msg.contains(want), "missing {want:?} in {msg}");
        }
    }

    #[test]
    fn missing_restart_policy_is_rejected_as_always() {
        let (_, errs) = parse(&PI.replace("      restartPolicy: Never\n", ""));
        assert!(
            errs[0].contains("restartPolicy: Unsupported value: \"Always\""),
            "{errs:?}"
        );
    }

    #[test]
    fn names_unsupported_fields_and_bad_types() {
        // Regression: a syntax error used to make the document stream loop forever.
        let (_, errs) = parse(&PI.replace(
            "        args:",
            "        ports: [{containerPort: 80}]\n        args:",
        ));
        assert!(
            errs[0].contains(
                "spec.template.spec.containers[0].ports: Forbidden: not supported by wasmjob"
            ),
            "{errs:?}"
        );
        let (_, errs) = parse(&PI.replace("backoffLimit: 4", "backoffLimit: four"));
        assert!(errs[0].contains("spec.backoffLimit"), "{errs:?}");
        let (_, errs) = parse("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n");
        assert!(errs[0].contains("not supported"), "{errs:?}");
        let (_, errs) = parse(&format!("{PI}specs: {{}}\nstatus: {{active: 1}}\n"));
        assert!(
            errs[0].contains("specs: Forbidden: not supported by wasmjob"),
            "{errs:?}"
        );
        assert!(
            !errs[0].contains("status"),
            "status is ignored as on create: {errs:?}"
        );
        let (_, errs) = parse("key: [unclosed");
        assert!(errs[0].contains("not valid YAML"), "{errs:?}");
    }

    #[test]
    fn volume_mounts_must_name_a_volume() {
        let text = PI.replace(
            "        args: [\"2000\"]\n",
            "        volumeMounts: [{name: data, mountPath: /data}, {name: nope, mountPath: rel}]\n",
        ).replace("      restartPolicy: Never", "      restartPolicy: Never\n      volumes: [{name: data, emptyDir: {}}, {name: gone, nfs: {server: x}}]");
        let (_, errs) = parse(&text);
        let msg = &errs[0];
        assert!(
            msg.contains("volumeMounts[1].name: Not found: \"nope\""),
            "{msg}"
        );
        assert!(
            msg.contains(
                "volumeMounts[1].mountPath: Invalid value: \"rel\": must be an absolute path"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("spec.template.spec.volumes[1].nfs: Forbidden"),
            "{msg}"
        );
    }
}
