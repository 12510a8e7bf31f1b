//! Reading manifests: files, directories and multi-document YAML into defaulted, validated Jobs.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::defaults::default_job;
use super::field::ErrorList;
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
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match manifest_files(path) {
            Ok(files) => {
                for file in files {
                    match std::fs::read_to_string(&file) {
                        Ok(text) => {
                            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
                            let (j, e) = parse_documents(&text, &file.display().to_string(), &base);
                            jobs.extend(j);
                            errors.extend(e);
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
        Ok(jobs)
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

/// Parses every document of one YAML (or JSON) text.
pub fn parse_documents(
    text: &str,
    file: &str,
    base_dir: &Path,
) -> (Vec<JobManifest>, Vec<ManifestError>) {
    let mut jobs = Vec::new();
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
    (jobs, errors)
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
        (_, "CronJob") => return Err(err("kind CronJob is not supported by wasmjob yet".into())),
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
