//! Shards: the I-th of N contiguous ranges of the input order, split as fairseq's
//! `get_shard_range` splits a manifest, so per-shard outputs concatenate back in manifest order
//! and every input is in exactly one shard on every machine.

use std::ops::Range;

use crate::error::CorpusError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 0.
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = CorpusError;

    /// `I/N`, I from 0 to N - 1.
    fn from_str(s: &str) -> Result<Self, CorpusError> {
        let bad = |why: &str| CorpusError::Shard(format!("--shard {s}: {why}"));
        let (i, n) = s.split_once('/').ok_or_else(|| bad("expected I/N, e.g. 0/4 for the first of 4 shards"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("I is not a whole number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("N is not a whole number"))?;
        Shard::new(index, count).map_err(|e| bad(&e.to_string()))
    }
}

/// Shard I of N that cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("N must be at least 1")]
    NoShards,
    #[error("I is counted from 0, so it must be below N ({count})")]
    PastTheEnd { count: usize },
}

impl Shard {
    /// The whole input: one shard of one.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= count {
            return Err(ShardError::PastTheEnd { count });
        }
        Ok(Shard { index, count })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The positions of this shard among `total` inputs: fairseq's
    /// `round(total / count * index)` to `round(total / count * (index + 1))`, with Python's
    /// rounding (halves to even) so the ranges match fairseq's exactly.
    pub fn range(&self, total: usize) -> Range<usize> {
        let edge = |r: usize| ((total as f64 / self.count as f64) * r as f64).round_ties_even() as usize;
        edge(self.index).min(total)..edge(self.index + 1).min(total)
    }

    /// The shard a job scheduler gives this process, and the sentence that says where it came
    /// from: a Slurm job array (`SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN`, over
    /// `SLURM_ARRAY_TASK_STEP`, of `SLURM_ARRAY_TASK_COUNT`), else torchrun (`RANK` of
    /// `WORLD_SIZE`). `None` outside both.
    pub fn from_env() -> Result<Option<(Shard, String)>, CorpusError> {
        Shard::from_vars(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`Shard::from_env`] over any source of variables (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<(Shard, String)>, CorpusError> {
        let number = |name: &str| -> Result<Option<usize>, CorpusError> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| CorpusError::Shard(format!("{name}={v}: not a whole number"))),
            }
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                CorpusError::Shard(format!(
                    "SLURM_ARRAY_TASK_ID={id} but SLURM_ARRAY_TASK_COUNT is not set (Slurm 17.02 or later sets it); pass --shard I/N"
                ))
            })?;
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            if id < min || (id - min) % step != 0 {
                return Err(CorpusError::Shard(format!(
                    "SLURM_ARRAY_TASK_ID={id} is not in the array (SLURM_ARRAY_TASK_MIN={min}, step {step}); pass --shard I/N"
                )));
            }
            let index = (id - min) / step;
            let shard = Shard::new(index, count).map_err(|e| {
                CorpusError::Shard(format!(
                    "SLURM_ARRAY_TASK_ID={id} (task {index} from SLURM_ARRAY_TASK_MIN={min}) with SLURM_ARRAY_TASK_COUNT={count}: {e}; an array with gaps needs --shard I/N"
                ))
            })?;
            let why = format!(
                "shard {shard} from the Slurm job array (SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_COUNT={count})"
            );
            return Ok(Some((shard, why)));
        }
        if let (Some(rank), Some(world)) = (number("RANK")?, number("WORLD_SIZE")?) {
            let shard = Shard::new(rank, world)
                .map_err(|e| CorpusError::Shard(format!("RANK={rank} with WORLD_SIZE={world}: {e}")))?;
            return Ok(Some((shard, format!("shard {shard} from torchrun (RANK={rank}, WORLD_SIZE={world})"))));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// fairseq's `get_shard_range`, transcribed from Python with its float arithmetic.
    fn fairseq(tot: usize, nshard: usize, rank: usize) -> (usize, usize) {
        let start = (tot as f64 / nshard as f64 * rank as f64).round_ties_even() as usize;
        let end = (tot as f64 / nshard as f64 * (rank + 1) as f64).round_ties_even() as usize;
        (start, end)
    }

    #[test]
    fn shards_partition_the_input_in_order() {
        for total in [0, 1, 2, 5, 7, 10, 281_241] {
            for count in 1..=9 {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard { index, count }.range(total);
                    assert_eq!(r.start, next, "{total} in {count}: shard {index} must start where the last ended");
                    assert_eq!((r.start, r.end), fairseq(total, count, index));
                    next = r.end;
                }
                assert_eq!(next, total, "{total} in {count}: every input in a shard");
            }
        }
        // Python: round(5 / 2 * 1) == 2 (halves to even), so shard 0 of 2 over 5 has 2 inputs.
        assert_eq!(Shard { index: 0, count: 2 }.range(5), 0..2);
        assert_eq!(Shard { index: 1, count: 4 }.range(10), 2..5);
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard { index: 2, count: 3 });
        for bad in ["3/3", "1/0", "a/2", "2", "-1/3"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--shard {bad}: ")), "{e}");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn from_the_environment() {
        assert!(Shard::from_vars(vars(&[])).unwrap().is_none());
        let (s, why) = Shard::from_vars(vars(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert!(why.contains("Slurm") && why.contains("SLURM_ARRAY_TASK_ID=5"), "{why}");
        let stepped = vars(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(Shard::from_vars(stepped).unwrap().unwrap().0, Shard { index: 2, count: 3 });
        let (s, _) = Shard::from_vars(vars(&[("RANK", "0"), ("WORLD_SIZE", "2")])).unwrap().unwrap();
        assert_eq!(s, Shard { index: 0, count: 2 });
        // Slurm wins over torchrun variables the job may also carry.
        let both = vars(&[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "2"), ("RANK", "1"), ("WORLD_SIZE", "2")]);
        assert_eq!(Shard::from_vars(both).unwrap().unwrap().0, Shard { index: 0, count: 2 });
        for bad in [
            vars(&[("SLURM_ARRAY_TASK_ID", "3")]),
            vars(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "3")]),
            vars(&[("RANK", "x"), ("WORLD_SIZE", "2")]),
        ] {
            assert!(Shard::from_vars(bad).is_err());
        }
    }
}
