//! Sets of completion indexes and Kubernetes' compressed form of them (`"1,3-5,7"`), as
//! `status.completedIndexes` and `status.failedIndexes` carry them.

use std::collections::BTreeMap;
use std::fmt;

/// A set of completion indexes, kept as disjoint, non-adjacent runs (first → last), so that
/// a Job with 100,000 indexes done in order is a handful of runs: every operation costs
/// O(log runs), or O(runs) to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexes {
    runs: BTreeMap<i32, i32>,
    len: i64,
}

impl Indexes {
    /// An empty set.
    pub fn new() -> Self {
        Indexes::default()
    }

    /// The run holding `i`, if any.
    fn run_of(&self, i: i32) -> Option<(i32, i32)> {
        let (&a, &b) = self.runs.range(..=i).next_back()?;
        (i <= b).then_some((a, b))
    }

    /// Adds `i`; whether it was new.
    pub fn insert(&mut self, i: i32) -> bool {
        if self.contains(i) {
            return false;
        }
        let before = self
            .runs
            .range(..i)
            .next_back()
            .map(|(&a, &b)| (a, b))
            .filter(|&(_, b)| b.checked_add(1) == Some(i));
        let after = i
            .checked_add(1)
            .and_then(|n| self.runs.get(&n).map(|&b| (n, b)));
        let start = before.map_or(i, |(a, _)| a);
        let end = after.map_or(i, |(n, b)| {
            self.runs.remove(&n);
            b
        });
        self.runs.insert(start, end);
        self.len += 1;
        true
    }

    /// Whether `i` is in the set.
    pub fn contains(&self, i: i32) -> bool {
        self.run_of(i).is_some()
    }

    /// The first index at or after `i` that is not in the set.
    pub fn next_absent(&self, i: i32) -> i32 {
        self.run_of(i).map_or(i, |(_, b)| b.saturating_add(1))
    }

    /// How many indexes below `completions` the set holds.
    pub fn count_below(&self, completions: i32) -> i32 {
        // Indexes at or past `completions` are rare (completions lowered): subtract them.
        let above: i64 = self
            .runs
            .range(..)
            .rev()
            .take_while(|&(_, &b)| b >= completions)
            .map(|(&a, &b)| i64::from(b) - i64::from(a.max(completions)) + 1)
            .sum();
        i32::try_from(self.len - above).unwrap_or(i32::MAX)
    }

    /// How many indexes in `[a, b]` the set holds.
    pub fn count_in(&self, a: i32, b: i32) -> i32 {
        let first = self.run_of(a).map_or(a, |(s, _)| s);
        let n: i64 = self
            .runs
            .range(first..=b)
            .map(|(&s, &e)| i64::from(e.min(b)) - i64::from(s.max(a)) + 1)
            .sum();
        i32::try_from(n).unwrap_or(i32::MAX)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Parses the compressed form; invalid parts are skipped.
    pub fn parse(s: &str) -> Self {
        let mut set = Indexes::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                        for i in a..=b {
                            set.insert(i);
                        }
                    }
                }
                None => {
                    if let Ok(i) = part.parse() {
                        set.insert(i);
                    }
                }
            }
        }
        set
    }
}

impl fmt::Display for Indexes {
    /// Kubernetes' `orderedIntervals.String`: runs of three or more as `a-b`, a pair as
    /// `a,b`, single indexes as `a`, comma-separated, ascending.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (&start, &end)) in self.runs.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            match i64::from(end) - i64::from(start) {
                0 => write!(f, "{start}")?,
                1 => write!(f, "{start},{end}")?,
                _ => write!(f, "{start}-{end}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_runs_like_kubernetes() {
        let cases: [(&[i32], &str); 6] = [
            (&[], ""),
            (&[0], "0"),
            (&[1, 3, 4, 5, 7], "1,3-5,7"),
            (&[0, 1], "0,1"),
            (&[9, 2, 3, 8], "2,3,8,9"),
            (&[0, 1, 2, 5], "0-2,5"),
        ];
        for (set, want) in cases {
            let mut ix = Indexes::new();
            set.iter().for_each(|&i| {
                ix.insert(i);
            });
            assert_eq!(ix.to_string(), want);
            assert_eq!(Indexes::parse(want), ix);
        }
        assert_eq!(Indexes::parse("1,3-5,7").count_below(5), 3);
    }

    #[test]
    fn agrees_with_a_plain_set_whatever_the_order_of_inserts() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut ix = Indexes::new();
            let mut plain = std::collections::BTreeSet::new();
            for _ in 0..rng.random_range(0..40) {
                let i = rng.random_range(0..30);
                assert_eq!(ix.insert(i), plain.insert(i));
            }
            let count =
                |r: std::ops::RangeInclusive<i32>| i32::try_from(plain.range(r).count()).unwrap();
            for i in -1..32 {
                assert_eq!(ix.contains(i), plain.contains(&i), "{ix} {i}");
                let absent = (i..).find(|n| !plain.contains(n)).unwrap();
                assert_eq!(ix.next_absent(i), absent, "{ix} {i}");
                assert_eq!(ix.count_below(i), count(i32::MIN..=i - 1), "{ix} {i}");
                assert_eq!(ix.count_in(i, i + 5), count(i..=i + 5), "{ix} {i}");
            }
            let plain_text = {
                let mut p = Indexes::new();
                plain.iter().for_each(|&i| {
                    p.insert(i);
                });
                p.to_string()
            };
            assert_eq!(Indexes::parse(&ix.to_string()), ix);
            assert_eq!(ix.to_string(), plain_text);
        }
    }
}
