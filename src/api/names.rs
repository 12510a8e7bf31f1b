//! Name rules shared by validation: RFC 1123 labels and subdomains, env var names, label keys.

/// Kubernetes' message for an invalid RFC 1123 label.
pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Kubernetes' message for an invalid RFC 1123 subdomain.
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Kubernetes' message for an invalid environment variable name.
pub const ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";

/// Kubernetes' message for an invalid label value.
pub const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Kubernetes' message for an invalid label key name part.
pub const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ignoring length.
pub fn is_dns1123_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

/// An RFC 1123 subdomain shape: labels joined by dots, ignoring length.
pub fn is_dns1123_subdomain_shape(s: &str) -> bool {
    s.split('.').all(is_dns1123_label_shape)
}

/// `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
    !b.is_empty() && !b[0].is_ascii_digit() && b.iter().all(|&c| ok(c))
}

/// `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`, at most 63 bytes.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty() || (b.len() <= 63 && is_qualified_name_part(s))
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, ignoring length.
pub fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key: optional `prefix/` (a DNS subdomain) and a name part of at most 63 bytes.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !is_dns1123_subdomain_shape(p))
    {
        return Some(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(name) {
        return Some(QUALIFIED_NAME_MSG.into());
    }
    None
}

/// Work-queue names: letters, digits, `-`, `_` and `.`, at most 253 characters.
pub fn is_queue_name(q: &str) -> bool {
    !q.is_empty()
        && q.len() <= 253
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_shapes() {
        for ok in ["pi", "job-wq-1", "a", "0abc"] {
            assert!(is_dns1123_label_shape(ok), "{ok}");
        }
        for bad in ["", "Pi", "-pi", "pi-", "pi_x", "pi.x"] {
            assert!(!is_dns1123_label_shape(bad), "{bad}");
        }
        assert!(is_dns1123_subdomain_shape("a.b-c.d"));
        assert!(!is_dns1123_subdomain_shape("a..b"));
        assert!(is_env_var_name("JOB_COMPLETION_INDEX"));
        assert!(is_env_var_name("my.env-name"));
        assert!(!is_env_var_name("1ABC"));
        assert!(!is_env_var_name("A B"));
        assert!(is_label_value(""));
        assert!(is_label_value("jobexample"));
        assert!(!is_label_value("-x"));
        assert_eq!(label_key_error("batch.kubernetes.io/job-name"), None);
        assert!(label_key_error("Bad_/x").is_some());
        assert!(label_key_error("a b").is_some());
    }
}
