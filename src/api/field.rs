//! Field-path validation errors, formatted exactly as Kubernetes' `field.Error` prints them.

use std::fmt;

/// A path to a field inside an object, e.g. `spec.template.spec.containers[0].image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// The root path with one segment, e.g. `spec`.
    pub fn new(root: &str) -> Self {
        Path(root.to_string())
    }

    /// The path of a child field: `spec` → `spec.parallelism`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// The path of a list element: `containers` → `containers[0]`.
    pub fn index(&self, i: usize) -> Self {
        Path(format!("{}[{i}]", self.0))
    }

    /// The path of a map entry: `labels` → `labels[app]`.
    pub fn key(&self, k: &str) -> Self {
        Path(format!("{}[{k}]", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value as Kubernetes prints it in an error: numbers bare, strings quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer, printed bare.
    Int(i64),
    /// A string, printed Go-quoted.
    Str(String),
    /// A composite value, printed as given (Go's `%#v` of it, e.g. `[]int32{19, 11}`).
    Raw(String),
    /// No value printed (Go's `field.OmitValueType`).
    Omit,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Raw(s) => f.write_str(s),
            Value::Omit => Ok(()),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

/// The kind of a validation error, each with Kubernetes' wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Invalid value: V: detail`
    Invalid(Value, String),
    /// `Required value` (with an optional detail)
    Required(String),
    /// `Unsupported value: V: supported values: "a", "b"`
    NotSupported(Value, Vec<&'static str>),
    /// `Forbidden: detail`
    Forbidden(String),
    /// `Duplicate value: V`
    Duplicate(Value),
    /// `Too long: may not be more than N bytes`
    TooLong(usize),
    /// `Too long: detail` (the older wordings some checks still use)
    TooLongDetail(String),
    /// `Not found: V`
    NotFound(Value),
    /// `Too many: N: must have at most M items`
    TooMany(usize, usize),
}

/// One validation error at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the error is.
    pub path: Path,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl FieldError {
    /// The same error inside `prefix`: a Job's `spec.template` becomes a CronJob's
    /// `spec.jobTemplate.spec.template`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = Path(format!("{prefix}.{}", self.path.0));
        self
    }

    /// `Invalid value` at `path`.
    pub fn invalid(path: &Path, value: impl Into<Value>, detail: impl Into<String>) -> Self {
        Self::at(path, ErrorKind::Invalid(value.into(), detail.into()))
    }
    /// `Required value` at `path`.
    pub fn required(path: &Path, detail: impl Into<String>) -> Self {
        Self::at(path, ErrorKind::Required(detail.into()))
    }
    /// `Unsupported value` at `path`.
    pub fn not_supported(path: &Path, value: impl Into<Value>, supported: &[&'static str]) -> Self {
        Self::at(
            path,
            ErrorKind::NotSupported(value.into(), supported.to_vec()),
        )
    }
    /// `Forbidden` at `path`.
    pub fn forbidden(path: &Path, detail: impl Into<String>) -> Self {
        Self::at(path, ErrorKind::Forbidden(detail.into()))
    }
    /// `Duplicate value` at `path`.
    pub fn duplicate(path: &Path, value: impl Into<Value>) -> Self {
        Self::at(path, ErrorKind::Duplicate(value.into()))
    }
    /// `Too long` at `path`.
    pub fn too_long(path: &Path, max: usize) -> Self {
        Self::at(path, ErrorKind::TooLong(max))
    }
    /// `Too long` at `path` with Kubernetes' `detail`.
    pub fn too_long_detail(path: &Path, detail: impl Into<String>) -> Self {
        Self::at(path, ErrorKind::TooLongDetail(detail.into()))
    }
    /// `Too many` at `path`: `actual` items where at most `max` are allowed.
    pub fn too_many(path: &Path, actual: usize, max: usize) -> Self {
        Self::at(path, ErrorKind::TooMany(actual, max))
    }
    /// `Not found` at `path`.
    pub fn not_found(path: &Path, value: impl Into<Value>) -> Self {
        Self::at(path, ErrorKind::NotFound(value.into()))
    }
    fn at(path: &Path, kind: ErrorKind) -> Self {
        FieldError {
            path: path.clone(),
            kind,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.kind {
            ErrorKind::Invalid(Value::Omit, d) => write!(f, "Invalid value: {d}"),
            ErrorKind::Invalid(v, d) => {
                write!(f, "Invalid value: {v}")?;
                if !d.is_empty() {
                    write!(f, ": {d}")?;
                }
                Ok(())
            }
            ErrorKind::Required(d) if d.is_empty() => f.write_str("Required value"),
            ErrorKind::Required(d) => write!(f, "Required value: {d}"),
            ErrorKind::NotSupported(v, s) => {
                write!(f, "Unsupported value: {v}")?;
                if !s.is_empty() {
                    let quoted: Vec<String> = s.iter().map(|x| format!("{x:?}")).collect();
                    write!(f, ": supported values: {}", quoted.join(", "))?;
                }
                Ok(())
            }
            ErrorKind::Forbidden(d) => write!(f, "Forbidden: {d}"),
            ErrorKind::Duplicate(v) => write!(f, "Duplicate value: {v}"),
            ErrorKind::TooLong(n) => write!(f, "Too long: may not be more than {n} bytes"),
            ErrorKind::TooLongDetail(d) => write!(f, "Too long: {d}"),
            ErrorKind::NotFound(v) => write!(f, "Not found: {v}"),
            ErrorKind::TooMany(n, max) => write!(f, "Too many: {n}: must have at most {max} items"),
        }
    }
}

/// All the errors found in one object.
pub type ErrorList = Vec<FieldError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_kubernetes() {
        let spec = Path::new("spec");
        let cases = [
            (
                FieldError::invalid(
                    &spec.child("parallelism"),
                    -1,
                    "must be greater than or equal to 0",
                ),
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                FieldError::not_supported(
                    &spec.child("template").child("spec").child("restartPolicy"),
                    "Always",
                    &["OnFailure", "Never"],
                ),
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ),
            (
                FieldError::required(&spec.child("containers").index(0).child("image"), ""),
                "spec.containers[0].image: Required value",
            ),
            (
                FieldError::duplicate(&spec.child("volumes").index(1).child("name"), "data"),
                "spec.volumes[1].name: Duplicate value: \"data\"",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
