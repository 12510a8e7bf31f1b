//! Sets of completion indexes and Kubernetes' compressed form of them (`"1,3-5,7"`), as
//! `status.completedIndexes` and `status.failedIndexes` carry them.

use std::collections::BTreeSet;
use std::fmt;

/// A set of completion indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexes(BTreeSet<i32>);

impl Indexes {
    /// An empty set.
    pub fn new() -> Self {
        Indexes::default()
    }

    /// Adds `i`; whether it was new.
    pub fn insert(&mut self, i: i32) -> bool {
        self.0.insert(i)
    }

    /// Whether `i` is in the set.
    pub fn contains(&self, i: i32) -> bool {
        self.0.contains(&i)
    }

    /// How many indexes below `completions` the set holds.
    pub fn count_below(&self, completions: i32) -> i32 {
        i32::try_from(self.0.range(..completions).count()).unwrap_or(i32::MAX)
    }

    /// How many indexes in `[a, b]` the set holds.
    pub fn count_in(&self, a: i32, b: i32) -> i32 {
        i32::try_from(self.0.range(a..=b).count()).unwrap_or(i32::MAX)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the compressed form; invalid parts are skipped.
    pub fn parse(s: &str) -> Self {
        let mut set = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                        set.extend(a..=b);
                    }
                }
                None => {
                    if let Ok(i) = part.parse() {
                        set.insert(i);
                    }
                }
            }
        }
        Indexes(set)
    }
}

impl fmt::Display for Indexes {
    /// Kubernetes' `orderedIntervals.String`: runs of three or more as `a-b`, a pair as
    /// `a,b`, single indexes as `a`, comma-separated, ascending.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut it = self.0.iter().copied().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end += 1;
                it.next();
            }
            parts.push(match end - start {
                0 => start.to_string(),
                1 => format!("{start},{end}"),
                _ => format!("{start}-{end}"),
            });
        }
        f.write_str(&parts.join(","))
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
}
