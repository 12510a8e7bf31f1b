//! Label selectors in kubectl's `-l` syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
//! `k notin (a,b)`, `k`, `!k`, comma-separated and AND-ed (apimachinery's `labels.Parse`).

use std::collections::BTreeMap;
use std::fmt;

/// One requirement on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// `k=v`, `k==v`, `k in (a,b)`: the label is present with one of the values.
    In(String, Vec<String>),
    /// `k!=v`, `k notin (a,b)`: the label is absent or has none of the values.
    NotIn(String, Vec<String>),
    /// `k`: the label is present.
    Exists(String),
    /// `!k`: the label is absent.
    DoesNotExist(String),
}

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// Why a selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(String);

impl Selector {
    /// Parses kubectl's selector syntax.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut reqs = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            let (req, tail) = requirement(rest)?;
            reqs.push(req);
            rest = tail.trim_start();
            if let Some(t) = rest.strip_prefix(',') {
                rest = t.trim_start();
                if rest.is_empty() {
                    return Err(SelectorError("found '', expected: identifier".into()));
                }
            } else if !rest.is_empty() {
                return Err(SelectorError(format!("found '{rest}', expected: ','")));
            }
        }
        Ok(Selector(reqs))
    }

    /// The selector `k1=v1,k2=v2` of a Job's `matchLabels`.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Selector {
        Selector(
            labels
                .iter()
                .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
                .collect(),
        )
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Whether this is the empty selector.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::In(k, vs) if vs.len() == 1 => format!("{k}={}", vs[0]),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) if vs.len() == 1 => format!("{k}!={}", vs[0]),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

/// Splits off a key or value: the longest run of label characters.
fn word(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_key_char(c)).unwrap_or(s.len());
    s.split_at(end)
}

fn op_value<'a>(op: &str, rest: &'a str) -> Result<(String, &'a str), SelectorError> {
    let rest = rest.trim_start();
    let (value, tail) = word(rest);
    if value.is_empty() && !(rest.is_empty() || rest.starts_with(',')) {
        return Err(SelectorError(format!(
            "found '{rest}', expected: identifier after '{op}'"
        )));
    }
    Ok((value.to_string(), tail))
}

fn requirement(s: &str) -> Result<(Requirement, &str), SelectorError> {
    if let Some(t) = s.strip_prefix('!') {
        let (key, rest) = word(t.trim_start());
        if key.is_empty() {
            return Err(SelectorError(format!("found '{t}', expected: identifier")));
        }
        return Ok((Requirement::DoesNotExist(key.into()), rest));
    }
    let (key, rest) = word(s);
    if key.is_empty() {
        return Err(SelectorError(format!("found '{s}', expected: identifier")));
    }
    let key = key.to_string();
    let rest = rest.trim_start();
    if let Some(t) = rest.strip_prefix("!=") {
        let (v, tail) = op_value("!=", t)?;
        return Ok((Requirement::NotIn(key, vec![v]), tail));
    }
    if let Some(t) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        let (v, tail) = op_value("=", t)?;
        return Ok((Requirement::In(key, vec![v]), tail));
    }
    for (op, negate) in [("notin", true), ("in", false)] {
        if let Some(t) = rest.strip_prefix(op)
            && t.trim_start().starts_with('(')
        {
            let t = t.trim_start();
            let close = t
                .find(')')
                .ok_or_else(|| SelectorError(format!("found '{t}', expected: ')'")))?;
            let values: Vec<String> = t[1..close]
                .split(',')
                .map(|v| v.trim().to_string())
                .collect();
            if let Some(bad) = values.iter().find(|v| !v.chars().all(is_key_char)) {
                return Err(SelectorError(format!("invalid value '{bad}' in set")));
            }
            let tail = &t[close + 1..];
            let req = if negate {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            };
            return Ok((req, tail));
        }
    }
    if rest.is_empty() || rest.starts_with(',') {
        return Ok((Requirement::Exists(key), rest));
    }
    Err(SelectorError(format!(
        "found '{rest}', expected: '=', '!=', '==', 'in', notin'"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matches_like_kubectl() {
        let pi = labels(&[("job-name", "pi"), ("jobgroup", "jobexample")]);
        let other = labels(&[("job-name", "other")]);
        let cases = [
            ("", true, true),
            ("job-name=pi", true, false),
            ("job-name==pi", true, false),
            ("job-name!=pi", false, true),
            ("job-name in (pi, x)", true, false),
            ("job-name notin (pi,x)", false, true),
            ("jobgroup", true, false),
            ("!jobgroup", false, true),
            ("job-name=pi,jobgroup=jobexample", true, false),
            ("job-name in (pi,other),!missing", true, true),
            ("missing!=x", true, true),
        ];
        for (sel, want_pi, want_other) in cases {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&pi), want_pi, "{sel} on pi");
            assert_eq!(s.matches(&other), want_other, "{sel} on other");
        }
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in ["=pi", "job-name=pi,", "a in (b", "a ~ b", "!", "a=b c"] {
            assert!(Selector::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn round_trips_through_display() {
        let s = Selector::parse("a=b,c!=d,e in (f,g),h,!i").unwrap();
        assert_eq!(s.to_string(), "a=b,c!=d,e in (f,g),h,!i");
    }
}
