//! `spec.successPolicy` of an Indexed Job (kubernetes' pkg/controller/job/success_policy.go).

use super::indexes::Indexes;
use crate::api::types::SuccessPolicy;

/// The position of the first rule that the Job's succeeded indexes satisfy: all of the
/// rule's `succeededIndexes` (or `succeededCount` of them) succeeded, or, for a rule with
/// only `succeededCount`, that many indexes in all.
pub fn matching_rule(policy: &SuccessPolicy, completions: i32, done: &Indexes) -> Option<usize> {
    let succeeded = done.count_below(completions);
    if succeeded == 0 {
        return None;
    }
    policy
        .rules
        .iter()
        .position(|rule| match &rule.succeeded_indexes {
            Some(text) => {
                // As intervals, never expanded: a rule may name millions of indexes.
                let required = intervals(text, completions);
                let total: i64 = required.iter().map(|(a, b)| i64::from(b - a) + 1).sum();
                if total == 0 {
                    // An unparsable or out-of-range set (validation rejects it) never matches.
                    return false;
                }
                let hits: i64 = required
                    .iter()
                    .map(|&(a, b)| i64::from(done.count_in(a, b)))
                    .sum();
                hits >= rule.succeeded_count.map_or(total, i64::from)
            }
            None => rule.succeeded_count.is_some_and(|n| succeeded >= n),
        })
}

/// `parseIndexesFromString`: the intervals of `text` below `completions`, skipping
/// malformed parts, stopping at the first that starts past the end.
fn intervals(text: &str, completions: i32) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let parsed = match part.split_once('-') {
            Some((a, b)) => a.parse::<i32>().ok().zip(b.parse::<i32>().ok()),
            None => part.parse::<i32>().ok().map(|i| (i, i)),
        };
        let Some((a, b)) = parsed.filter(|(a, b)| 0 <= *a && a <= b) else {
            continue;
        };
        if a >= completions {
            break;
        }
        out.push((a, b.min(completions - 1)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::SuccessPolicyRule;

    fn policy(rules: &[(Option<&str>, Option<i32>)]) -> SuccessPolicy {
        SuccessPolicy {
            rules: rules
                .iter()
                .map(|(ix, n)| SuccessPolicyRule {
                    succeeded_indexes: ix.map(Into::into),
                    succeeded_count: *n,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_as_kubernetes_does() {
        // The docs' example: any one of 0, 2, 3.
        let docs = policy(&[(Some("0,2-3"), Some(1))]);
        assert_eq!(matching_rule(&docs, 10, &Indexes::parse("1")), None);
        assert_eq!(matching_rule(&docs, 10, &Indexes::parse("1,3")), Some(0));
        // All of the listed indexes.
        let all = policy(&[(Some("0-2"), None)]);
        assert_eq!(matching_rule(&all, 5, &Indexes::parse("0,2,4")), None);
        assert_eq!(matching_rule(&all, 5, &Indexes::parse("0-2")), Some(0));
        // A count alone, and the first matching rule wins.
        let two = policy(&[(Some("4"), None), (None, Some(2))]);
        assert_eq!(matching_rule(&two, 5, &Indexes::parse("0,1")), Some(1));
        assert_eq!(matching_rule(&two, 5, &Indexes::parse("0,4")), Some(0));
        assert_eq!(matching_rule(&two, 5, &Indexes::new()), None);
        // A huge rule is never expanded.
        let huge = policy(&[(Some("0-99999999"), Some(2))]);
        assert_eq!(
            matching_rule(&huge, 100_000_000, &Indexes::parse("7,8")),
            Some(0)
        );
    }
}
