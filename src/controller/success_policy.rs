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
                let required = Indexes::parse(text);
                let total = required.count_below(completions);
                if total == 0 {
                    // An unparsable or out-of-range set (validation rejects it) never matches.
                    return false;
                }
                let hits = required.intersection_below(done, completions);
                hits >= rule.succeeded_count.unwrap_or(total)
            }
            None => rule.succeeded_count.is_some_and(|n| succeeded >= n),
        })
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
    }
}
