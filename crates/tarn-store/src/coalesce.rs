//! Which row groups a mutation merges after its edit, under a row-count target (SPEC §3.5,
//! docs/design/0007-trailing-coalescing.md). Only the decision lives here, taken from row
//! counts and boundary ties, so that the write path and a streaming writer take it the same
//! way and tests and simulations can drive it without files.
//!
//! A row group under the target is *off target*; the *tail* is the run of off-target row
//! groups at the end. Every mutation first keeps its edit from stranding off-target row
//! groups, then applies the dataset's rule to the tail:
//! - **tiered** (the default, fan-in F = [`FAN_IN`]): a row group of `s < T` rows has level
//!   `ceil(log_F(T / s))` ([`level`]). When the tail holds T rows or more it is merged and
//!   cut at T; otherwise F tail groups of one level are merged into one of the next lower
//!   level, and a smaller group is never left before a bigger one. An append then rewrites
//!   each row about `ceil(log_F(T / D))` times and the tail holds at most F - 1 row groups
//!   per level.
//! - **max off target** (`--max-off-target N`, oups's rule): when more than N tail groups
//!   are off target, the tail is merged.

use std::ops::Range;
use tarn_core::WriteOptions;

/// How many row groups of one level the tiered tail merges into one.
pub const FAN_IN: u64 = 8;

/// The rule for the tail of a dataset with a row-count target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coalescing {
    /// The size-tiered tail with this fan-in (at least 2).
    Tiered { fan_in: u64 },
    /// oups's rule: merge the tail when it has more than this many row groups.
    MaxOffTarget(u32),
}

impl Coalescing {
    /// The rule a dataset's options ask for.
    pub fn of(options: &WriteOptions) -> Self {
        match options.max_off_target {
            None => Self::Tiered { fan_in: FAN_IN },
            Some(n) => Self::MaxOffTarget(n),
        }
    }
}

/// The level of a row group of `rows` rows under a target of `target` rows: 0 when it is on
/// target (`rows >= target`), else `ceil(log_F(target / rows))`, computed in integers:
/// level ℓ ≥ 1 holds exactly the sizes with `rows * F^ℓ >= target > rows * F^(ℓ-1)`, that
/// is `target / F^ℓ <= rows < target / F^(ℓ-1)` in exact arithmetic (a size on a boundary,
/// `rows = target / F^ℓ`, has level ℓ). F groups of level ℓ hold between
/// `target / F^(ℓ-1)` and `target / F^(ℓ-2)` rows: merged they have level ℓ - 1 (or reach
/// the target when ℓ = 1).
pub fn level(rows: u64, target: u64, fan_in: u64) -> u32 {
    if rows >= target {
        return 0;
    }
    let f = u128::from(fan_in.max(2));
    let target = u128::from(target);
    // A row group is never empty; an empty one counts as one row.
    let mut reach = u128::from(rows.max(1)) * f;
    let mut l = 1;
    while reach < target {
        reach *= f;
        l += 1;
    }
    l
}

/// The most row groups the tiered tail keeps when every write appends `rows_per_append`
/// rows: F - 1 per level from 1 to the level of an append (`(F - 1) * level(D)`), and 1 when
/// an append alone reaches level 0. Appends of varied sizes are bounded by the level of the
/// smallest one, at most `level(1, T, F)`.
pub fn tiered_tail_bound(target: u64, fan_in: u64, rows_per_append: u64) -> usize {
    let l = level(rows_per_append, target, fan_in) as usize;
    ((fan_in.max(2) as usize - 1) * l).max(1)
}

/// The row groups of a snapshot after an edit replaced some of them, as the decision sees
/// them.
#[derive(Debug, Clone)]
pub struct AfterEdit<'a> {
    /// Rows of each row group, in row order.
    pub rows: &'a [u64],
    /// `tied[i]`: row group `i` ends on the `ordered_on` value that row group `i + 1` starts
    /// with, so they may only be rewritten together (one entry per adjacent pair).
    pub tied: &'a [bool],
    /// The row groups the edit wrote (its rows cut at the target). Empty when the edit only
    /// removed row groups; then `written.start` is where they were. The edit is closed over
    /// equal boundary values, so a written group never ties with a kept neighbour.
    pub written: Range<usize>,
}

impl AfterEdit<'_> {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn tied(&self, i: usize) -> bool {
        self.tied.get(i).copied().unwrap_or(false)
    }

    fn sum(&self, r: &Range<usize>) -> u64 {
        self.rows[r.clone()].iter().sum()
    }
}

/// The runs of row groups to merge after an edit: each run is concatenated and cut at the
/// target again. Runs are disjoint, in order, and each holds at least two row groups.
///
/// The rules, for a target of T rows:
/// 1. **No stranding.** An edit that does not end in the tail merges the off-target row
///    groups on either side of what it wrote; an edit that ends in the tail and writes T
///    rows or more merges the whole tail with them. So an off-target row group is never
///    left next to a row group the edit wrote, except inside the tail, and outside the tail
///    no two off-target row groups touch. (SPEC §3.5: `[…, 64, 1]` plus 98 rows at target 64
///    gives `[…, 64, 64, 35]`.)
/// 2. **The tail**, by `rule` (see the module comment). Under the tiered rule, with tail
///    groups `t_1 … t_k`: if they hold T rows or more, all are merged; otherwise they are
///    pushed in order on a stack of runs, and after each push, while the run below the top
///    has a higher level than the top it is merged into the top (a smaller group never
///    precedes a bigger one), and while the top F runs have one level they are merged.
/// 3. **Ties.** A run is widened over row groups that share a boundary value with it; a
///    run that reaches T rows that way takes its off-target neighbours with it (rule 1).
pub fn plan(after: AfterEdit<'_>, target: u64, rule: Coalescing) -> Vec<Range<usize>> {
    let n = after.len();
    let written = after.written.start.min(n)..after.written.end.min(n);
    let off = |i: usize| after.rows[i] < target;
    let mut runs = Vec::new();

    let edit_in_tail = (written.end..n).all(off);
    if !edit_in_tail || after.sum(&written) >= target {
        let run = settle(&after, written.clone(), target, !edit_in_tail);
        if run != written {
            runs.push(run);
        }
    }
    // Unless the edit took the tail in, the tail is the one before the edit (plus what an
    // edit inside it wrote): apply the rule to it.
    if runs.last().is_none_or(|r: &Range<usize>| r.end < n) {
        let start = n - after.rows.iter().rev().take_while(|&&r| r < target).count();
        for r in tail_runs(&after.rows[start..], target, rule) {
            runs.push(settle(
                &after,
                start + r.start..start + r.end,
                target,
                false,
            ));
        }
    }
    normalize(&after, runs, target)
}

/// Widens `run` over tied neighbours, and over off-target neighbours when `middle` (an edit
/// outside the tail) or when the run holds the target or more, until nothing changes.
fn settle(after: &AfterEdit<'_>, run: Range<usize>, target: u64, middle: bool) -> Range<usize> {
    let n = after.len();
    let off = |i: usize| after.rows[i] < target;
    let (mut lo, mut hi) = (run.start, run.end);
    loop {
        let before = (lo, hi);
        while lo > 0 && after.tied(lo - 1) {
            lo -= 1;
        }
        while hi > 0 && hi < n && after.tied(hi - 1) {
            hi += 1;
        }
        let widen = middle || after.sum(&(lo..hi)) >= target;
        if widen && lo > 0 && off(lo - 1) {
            lo -= 1;
        }
        if widen && hi < n && off(hi) {
            hi += 1;
        }
        if (lo, hi) == before {
            return lo..hi;
        }
    }
}

/// Sorts runs, joins those that overlap or touch, settles the joined ones again, and drops
/// runs of one row group (merging one row group alone changes nothing).
fn normalize(after: &AfterEdit<'_>, mut runs: Vec<Range<usize>>, target: u64) -> Vec<Range<usize>> {
    loop {
        runs.sort_by_key(|r| (r.start, r.end));
        let mut joined: Vec<Range<usize>> = Vec::with_capacity(runs.len());
        for r in runs.drain(..) {
            match joined.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => joined.push(r),
            }
        }
        let settled: Vec<Range<usize>> = joined
            .iter()
            .map(|r| settle(after, r.clone(), target, false))
            .collect();
        if settled == joined {
            joined.retain(|r| r.len() >= 2);
            return joined;
        }
        runs = settled;
    }
}

/// The runs of the tail `sizes` (every one under target) that `rule` merges, in tail
/// indices.
fn tail_runs(sizes: &[u64], target: u64, rule: Coalescing) -> Vec<Range<usize>> {
    let k = sizes.len();
    if k < 2 {
        return Vec::new();
    }
    match rule {
        Coalescing::MaxOffTarget(max) => {
            if k > max as usize {
                std::iter::once(0..k).collect()
            } else {
                Vec::new()
            }
        }
        Coalescing::Tiered { fan_in } => {
            if sizes.iter().sum::<u64>() >= target {
                return std::iter::once(0..k).collect();
            }
            let f = fan_in.max(2) as usize;
            let level = |rows: u64| level(rows, target, fan_in);
            // (run, rows, level)
            let mut stack: Vec<(Range<usize>, u64, u32)> = Vec::new();
            for (i, &rows) in sizes.iter().enumerate() {
                stack.push((i..i + 1, rows, level(rows)));
                loop {
                    let len = stack.len();
                    let top = stack[len - 1].2;
                    let take = if len >= 2 && stack[len - 2].2 > top {
                        2
                    } else if len >= f && stack[len - f..].iter().all(|s| s.2 == top) {
                        f
                    } else {
                        break;
                    };
                    let merged = stack.split_off(len - take);
                    let rows: u64 = merged.iter().map(|s| s.1).sum();
                    let run = merged[0].0.start..merged[take - 1].0.end;
                    stack.push((run, rows, level(rows)));
                }
            }
            stack
                .into_iter()
                .map(|(run, _, _)| run)
                .filter(|r| r.len() >= 2)
                .collect()
        }
    }
}

/// The row counts after merging `runs` of `rows` and cutting each run at `target`: what a
/// plan leaves, for simulations and for a writer that needs the sizes ahead.
pub fn sizes_after(rows: &[u64], runs: &[Range<usize>], target: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(rows.len());
    let mut i = 0;
    for r in runs {
        out.extend_from_slice(&rows[i..r.start]);
        out.extend(cut_sizes(rows[r.clone()].iter().sum(), target));
        i = r.end;
    }
    out.extend_from_slice(&rows[i..]);
    out
}

/// The row counts of `rows` rows cut at `target`: full row groups and a shorter last one.
pub fn cut_sizes(rows: u64, target: u64) -> Vec<u64> {
    let target = target.max(1);
    let mut out = vec![target; (rows / target) as usize];
    if !rows.is_multiple_of(target) {
        out.push(rows % target);
    }
    out
}

// Lists of one run are what `plan` returns, not ranges meant as their elements.
#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TIERED: Coalescing = Coalescing::Tiered { fan_in: FAN_IN };

    fn plan_of(
        rows: &[u64],
        written: Range<usize>,
        target: u64,
        rule: Coalescing,
    ) -> Vec<Range<usize>> {
        let tied = vec![false; rows.len().saturating_sub(1)];
        plan(
            AfterEdit {
                rows,
                tied: &tied,
                written,
            },
            target,
            rule,
        )
    }

    fn apply(rows: &[u64], runs: &[Range<usize>], target: u64) -> Vec<u64> {
        sizes_after(rows, runs, target)
    }

    /// The same, each row group marked when the mutation wrote it (`written` or a run).
    fn apply_marked(
        rows: &[u64],
        written: Range<usize>,
        runs: &[Range<usize>],
        target: u64,
    ) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        let mut i = 0;
        for r in runs {
            out.extend((i..r.start).map(|j| (rows[j], written.contains(&j))));
            let merged = cut_sizes(rows[r.clone()].iter().sum(), target);
            out.extend(merged.into_iter().map(|c| (c, true)));
            i = r.end;
        }
        out.extend((i..rows.len()).map(|j| (rows[j], written.contains(&j))));
        out
    }

    fn cut(rows: u64, target: u64) -> Vec<u64> {
        cut_sizes(rows, target)
    }

    #[test]
    fn levels_have_exact_boundaries() {
        // T = 64, F = 8: level 1 is [8, 64), level 2 is [1, 8).
        assert_eq!(level(64, 64, 8), 0);
        assert_eq!(level(100, 64, 8), 0);
        assert_eq!(level(63, 64, 8), 1);
        assert_eq!(level(8, 64, 8), 1);
        assert_eq!(level(7, 64, 8), 2);
        assert_eq!(level(1, 64, 8), 2);
        // T = 100,000: 12,500 is the lowest size of level 1, 1,562.5 and 195.3 the next
        // boundaries; a day of minutes (1,440) is level 3, one row level 6.
        assert_eq!(level(12_500, 100_000, 8), 1);
        assert_eq!(level(12_499, 100_000, 8), 2);
        assert_eq!(level(1_563, 100_000, 8), 2);
        assert_eq!(level(1_562, 100_000, 8), 3);
        assert_eq!(level(1_440, 100_000, 8), 3);
        assert_eq!(level(196, 100_000, 8), 3);
        assert_eq!(level(195, 100_000, 8), 4);
        assert_eq!(level(1, 100_000, 8), 6);
        // No overflow at the ends of u64.
        assert_eq!(level(1, u64::MAX, 8), 22);
        assert_eq!(level(1, u64::MAX, u64::MAX), 1);
        assert_eq!(level(u64::MAX - 1, u64::MAX, 2), 1);
        assert_eq!(tiered_tail_bound(100_000, 8, 1_440), 21);
        assert_eq!(tiered_tail_bound(100_000, 8, 200_000), 1);
    }

    #[test]
    fn the_spec_example_never_strands_a_small_group() {
        // [64, 64, 1] plus 98 rows at target 64: the edit wrote [64, 34] after the 1.
        for rule in [
            TIERED,
            Coalescing::MaxOffTarget(1),
            Coalescing::MaxOffTarget(5),
        ] {
            let rows = [64, 64, 1, 64, 34];
            let runs = plan_of(&rows, 3..5, 64, rule);
            assert_eq!(runs, vec![2..5], "{rule:?}");
            assert_eq!(apply(&rows, &runs, 64), vec![64, 64, 64, 35]);
        }
    }

    #[test]
    fn appends_below_the_target_build_levels() {
        let t = 64;
        // Seven 1-row groups stay; the eighth merges them into one of level 1.
        assert!(plan_of(&[64, 1, 1, 1, 1, 1, 1, 1], 7..8, t, TIERED).is_empty());
        assert_eq!(
            plan_of(&[64, 1, 1, 1, 1, 1, 1, 1, 1], 8..9, t, TIERED),
            vec![1..9]
        );
        // A smaller group before a bigger one is merged into it.
        assert_eq!(plan_of(&[64, 2, 10], 2..3, t, TIERED), vec![1..3]);
        assert!(plan_of(&[64, 10, 2], 2..3, t, TIERED).is_empty());
        // The tail reaching the target is merged whole and cut at it.
        let rows = [64, 40, 20, 5];
        assert_eq!(plan_of(&rows, 3..4, t, TIERED), vec![1..4]);
        assert_eq!(apply(&rows, &[1..4], t), vec![64, 64, 1]);
        // Cascades: 8 groups of level 3 make one of level 2, which makes 8 of level 2.
        let t = 512;
        let mut rows = vec![512];
        rows.extend([8; 7]);
        rows.extend([1; 8]);
        let n = rows.len();
        assert_eq!(plan_of(&rows, n - 1..n, t, TIERED), vec![1..n]);
        assert_eq!(apply(&rows, &[1..n], t), vec![512, 64]);
    }

    #[test]
    fn max_off_target_merges_the_tail_past_its_limit() {
        let rule = Coalescing::MaxOffTarget(2);
        assert!(plan_of(&[10, 5, 3], 2..3, 10, rule).is_empty());
        assert_eq!(plan_of(&[10, 5, 3, 1], 3..4, 10, rule), vec![1..4]);
        // Zero allows none, but a lone group is not rewritten for nothing.
        assert!(plan_of(&[10, 5], 1..2, 10, Coalescing::MaxOffTarget(0)).is_empty());
        assert_eq!(
            plan_of(&[10, 5, 1], 2..3, 10, Coalescing::MaxOffTarget(0)),
            vec![1..3]
        );
    }

    #[test]
    fn edits_outside_the_tail_take_their_off_target_neighbours() {
        for rule in [TIERED, Coalescing::MaxOffTarget(1)] {
            // An upsert in the middle: [10, 3, (W: 10, 4), 10]: the 3 joins the edit.
            let rows = [10, 3, 10, 4, 10, 2];
            assert_eq!(plan_of(&rows, 2..4, 10, rule), vec![1..4], "{rule:?}");
            // On the right too.
            let rows = [10, 4, 6, 10];
            assert_eq!(plan_of(&rows, 1..2, 10, rule), vec![1..3], "{rule:?}");
            // A delete of a whole row group leaves its neighbours touching: merged.
            let rows = [10, 4, 6, 10];
            assert_eq!(plan_of(&rows, 2..2, 10, rule), vec![1..3], "{rule:?}");
            // Nothing to merge: the edit's own remainder between on-target groups stays.
            assert!(plan_of(&[10, 10, 4, 10], 1..3, 10, rule).is_empty());
            assert!(plan_of(&[10, 4, 10], 2..2, 10, rule).is_empty());
        }
    }

    #[test]
    fn ties_widen_a_run_and_a_run_reaching_the_target_takes_its_neighbours() {
        // [3 | 10 ~ 5, 2, 1(new)] where 10 and 5 share a value: merging the tail [5, 2, 1]
        // under oups's rule pulls the 10 in; then the run holds the target and takes the 3.
        // With an on-target 10 first, the run takes the 3 and stops at that 10.
        let tied = [false, false, true, false, false];
        for (rows, merged) in [([3, 10, 10, 5, 2, 1], 2..6), ([10, 3, 10, 5, 2, 1], 1..6)] {
            let runs = plan(
                AfterEdit {
                    rows: &rows,
                    tied: &tied,
                    written: 5..6,
                },
                10,
                Coalescing::MaxOffTarget(2),
            );
            assert_eq!(runs, vec![merged], "{rows:?}");
        }
    }

    /// An in-memory dataset of row counts under a row-count target: what the write path does
    /// with the sizes, for simulations of many mutations.
    #[derive(Debug, Clone)]
    struct Sim {
        rows: Vec<u64>,
        target: u64,
        rule: Coalescing,
        rewritten: u64,
        /// Which row groups the last mutation wrote.
        last_written: Vec<bool>,
    }

    impl Sim {
        fn new(target: u64, rule: Coalescing) -> Self {
            Self {
                rows: Vec::new(),
                target,
                rule,
                rewritten: 0,
                last_written: Vec::new(),
            }
        }

        /// Replaces row groups `a..b` (`read` of their rows are kept, the rest removed) by
        /// `read + new` rows; returns the existing rows rewritten.
        fn edit(&mut self, a: usize, b: usize, read: u64, new: u64) -> u64 {
            let cut = cut(read + new, self.target);
            let written = a..a + cut.len();
            self.rows.splice(a..b, cut);
            let runs = plan_of(&self.rows, written.clone(), self.target, self.rule);
            let mut rewritten = read;
            for r in &runs {
                rewritten += r
                    .clone()
                    .filter(|i| !written.contains(i))
                    .map(|i| self.rows[i])
                    .sum::<u64>();
            }
            let marked = apply_marked(&self.rows, written, &runs, self.target);
            self.rows = marked.iter().map(|&(r, _)| r).collect();
            self.rewritten += rewritten;
            self.last_written = marked.iter().map(|&(_, w)| w).collect();
            rewritten
        }

        /// A row group the last mutation kept, off target and outside the tail, next to one
        /// it wrote: what SPEC §3.5 calls stranding.
        fn stranded(&self) -> Option<usize> {
            let body = self.rows.len() - self.tail().len();
            (0..body).find(|&i| {
                let next_to_written = (i > 0 && self.last_written[i - 1])
                    || (i + 1 < self.rows.len() && self.last_written[i + 1]);
                self.rows[i] < self.target && !self.last_written[i] && next_to_written
            })
        }

        fn append(&mut self, rows: u64) -> u64 {
            let n = self.rows.len();
            self.edit(n, n, 0, rows)
        }

        fn tail(&self) -> &[u64] {
            let k = self
                .rows
                .iter()
                .rev()
                .take_while(|&&r| r < self.target)
                .count();
            &self.rows[self.rows.len() - k..]
        }
    }

    /// Off-target runs outside the tail are single row groups, and no off-target row group
    /// outside the tail was kept next to one the last mutation wrote.
    fn no_stranding(sim: &Sim) -> Result<(), String> {
        let body = &sim.rows[..sim.rows.len() - sim.tail().len()];
        if body
            .windows(2)
            .any(|w| w[0] < sim.target && w[1] < sim.target)
        {
            return Err(format!(
                "off-target row groups touch outside the tail: {:?}",
                sim.rows
            ));
        }
        if let Some(i) = sim.stranded() {
            return Err(format!("row group {i} stranded: {:?}", sim.rows));
        }
        Ok(())
    }

    /// The tiered tail's shape: levels never decrease and fewer than F groups per level.
    fn tiered_shape(tail: &[u64], target: u64, fan_in: u64) -> Result<(), String> {
        let levels: Vec<u32> = tail.iter().map(|&r| level(r, target, fan_in)).collect();
        if levels.windows(2).any(|w| w[0] > w[1]) {
            return Err(format!(
                "a smaller group precedes a bigger one: {tail:?} {levels:?}"
            ));
        }
        for l in levels.iter() {
            if levels.iter().filter(|&x| x == l).count() >= fan_in as usize {
                return Err(format!("{fan_in} groups of level {l}: {tail:?}"));
            }
        }
        if tail.iter().sum::<u64>() >= target && tail.len() > 1 {
            return Err(format!("the tail holds the target: {tail:?}"));
        }
        Ok(())
    }

    /// The amplification test of SPEC §3.5: 2,000 daily appends of a minute series (1,440
    /// rows) at the default target rewrite at most 3·N·D existing rows in total, and the
    /// tail never holds more than (F - 1) · level(D) = 21 row groups.
    #[test]
    fn daily_appends_at_the_default_target_rewrite_less_than_three_times_their_rows() {
        let (t, d, n) = (100_000, 1_440, 2_000u64);
        let bound = tiered_tail_bound(t, FAN_IN, d);
        assert_eq!(bound, 21);
        let mut sim = Sim::new(t, TIERED);
        let mut longest = 0;
        for i in 1..=n {
            sim.append(d);
            assert!(
                sim.rewritten <= 3 * i * d,
                "after {i} appends {} rows rewritten > 3·{i}·{d}",
                sim.rewritten
            );
            let tail = sim.tail();
            assert!(tail.len() <= bound, "append {i}: tail {tail:?}");
            tiered_shape(tail, t, FAN_IN).unwrap_or_else(|e| panic!("append {i}: {e}"));
            no_stranding(&sim).unwrap_or_else(|e| panic!("append {i}: {e}"));
            longest = longest.max(tail.len());
        }
        let per_row = sim.rewritten as f64 / (n * d) as f64;
        // The numbers docs/design/0007 quotes.
        assert_eq!(sim.rewritten, 7_307_360, "{per_row:.3} rewrites per row");
        assert_eq!(longest, 14);
        // oups's rule with one off-target group, for comparison: about T / 2D per row.
        let mut oups = Sim::new(t, Coalescing::MaxOffTarget(1));
        for _ in 0..n {
            oups.append(d);
        }
        assert_eq!(oups.rewritten, 99_260_000);
    }

    /// Appends of D rows rewrite at most ceil(log_F(T / D)) · N · D existing rows (the level of
    /// an append), and the tail holds at most (F - 1) per level: over ratios T / D from 1 to
    /// 100,000, and for fan-ins 2 to 8.
    #[test]
    fn amplification_follows_the_level_of_an_append() {
        for fan_in in [2, 3, 4, 8] {
            let rule = Coalescing::Tiered { fan_in };
            for (t, d) in [
                (10_000, 1),
                (30_000, 7),
                (100_000, 100),
                (100_000, 195),
                (100_000, 196),
                (100_000, 1_440),
                (100_000, 1_562),
                (100_000, 1_563),
                (100_000, 12_499),
                (100_000, 12_500),
                (100_000, 60_000),
                (100_000, 99_999),
                (100_000, 100_000),
                (100_000, 250_001),
                (4_096, 1),
                (4_096, 8),
                (4_096, 9),
                (512, 1),
                (64, 1),
                (1, 1),
            ] {
                // Enough appends for several cycles of the tail.
                let n = (8 * t / d).clamp(200, 40_000);
                let l = u64::from(level(d, t, fan_in)).max(1);
                let bound = tiered_tail_bound(t, fan_in, d);
                let mut sim = Sim::new(t, rule);
                for i in 1..=n {
                    sim.append(d);
                    let tail = sim.tail();
                    assert!(tail.len() <= bound, "F={fan_in} T={t} D={d} #{i}: {tail:?}");
                    tiered_shape(tail, t, fan_in)
                        .unwrap_or_else(|e| panic!("F={fan_in} T={t} D={d} #{i}: {e}"));
                }
                assert!(
                    sim.rewritten <= l * n * d,
                    "F={fan_in} T={t} D={d}: {} rewritten > {l}·{n}·{d}",
                    sim.rewritten
                );
            }
        }
    }

    /// The tables of docs/design/0007: rewrites per appended row and the longest tail for
    /// appends of D rows at T = 100,000 (enough appends for 30 cycles of the tail, at least
    /// 2,000), and the worst rewrites per row of each level over a sweep of D. Run with
    /// `--ignored --nocapture`.
    #[test]
    #[ignore = "prints the design note's tables"]
    fn print_amplification_tables() {
        let t = 100_000;
        let run = |d: u64, rule: Coalescing| {
            let n = (30 * t / d).max(2_000);
            let mut sim = Sim::new(t, rule);
            let mut longest = 0;
            for _ in 0..n {
                sim.append(d);
                longest = longest.max(sim.tail().len());
            }
            (sim.rewritten as f64 / (n * d) as f64, longest, n)
        };
        println!(
            "| D | T/D | level | appends | tiered rewrites/row | longest tail | bound | oups N=1 rewrites/row |"
        );
        for d in [
            1, 10, 100, 196, 1_000, 1_440, 1_563, 5_000, 12_500, 50_000, 100_000,
        ] {
            let (per_row, longest, n) = run(d, TIERED);
            let (oups, _, _) = run(d, Coalescing::MaxOffTarget(1));
            println!(
                "| {d} | {:.1} | {} | {n} | {per_row:.3} | {longest} | {} | {oups:.2} |",
                t as f64 / d as f64,
                level(d, t, FAN_IN),
                tiered_tail_bound(t, FAN_IN, d),
            );
        }
        let mut worst: std::collections::BTreeMap<u32, (f64, u64, usize)> = Default::default();
        let mut d = 1.0f64;
        while d <= t as f64 {
            let rows = d.round() as u64;
            let (per_row, longest, _) = run(rows, TIERED);
            let e = worst
                .entry(level(rows, t, FAN_IN))
                .or_insert((0.0, rows, 0));
            if per_row > e.0 {
                (e.0, e.1) = (per_row, rows);
            }
            e.2 = e.2.max(longest);
            d *= 1.02;
        }
        println!("| level | worst rewrites/row | at D | longest tail |");
        for (l, (per_row, rows, longest)) in worst {
            println!("| {l} | {per_row:.3} | {rows} | {longest} |");
        }
    }

    /// The most appends that can end up in one row group when the tail never holds more
    /// than `k` row groups and no row is rewritten more than `a` times, whatever the rule
    /// (any runs of row groups may be merged after each append; merging the new rows on
    /// arrival is their first write, not a rewrite). Exhaustive search over the tails, each
    /// row group reduced to the most rewrites one of its rows has had.
    fn most_appends(k: usize, a: i32) -> usize {
        use std::collections::BTreeSet;
        // The new rows enter as -1: merged, they count 0.
        let mut states: BTreeSet<Vec<i32>> = BTreeSet::from([Vec::new()]);
        let mut best = 0;
        for m in 1.. {
            let mut next = BTreeSet::new();
            for s in &states {
                let mut seq = s.clone();
                seq.push(-1);
                // Every way to cut `seq` into contiguous blocks, each block merged.
                for cuts in 0u32..(1 << (seq.len() - 1)) {
                    let mut out = Vec::new();
                    let mut block: Vec<i32> = vec![seq[0]];
                    for (i, &c) in seq.iter().enumerate().skip(1) {
                        if cuts & (1 << (i - 1)) != 0 {
                            out.push(block);
                            block = Vec::new();
                        }
                        block.push(c);
                    }
                    out.push(block);
                    let merged: Vec<i32> = out
                        .iter()
                        .map(|b| {
                            if b.len() == 1 {
                                b[0].max(0)
                            } else {
                                b.iter().map(|&c| c + 1).max().unwrap_or(0)
                            }
                        })
                        .collect();
                    if merged.len() <= k && merged.iter().all(|&c| c <= a) {
                        next.insert(merged);
                    }
                }
            }
            if next.is_empty() {
                return best;
            }
            if next.iter().any(|s| s.len() == 1) {
                best = m;
            }
            states = next;
        }
        best
    }

    fn binomial(n: usize, r: usize) -> usize {
        (0..r).fold(1, |acc, i| acc * (n - i) / (i + 1))
    }

    /// The lower bound of docs/design/0007: with at most k tail groups and at most a
    /// rewrites per row, at most C(k + a, a) appends fill one row group.
    #[test]
    fn fewer_tail_groups_force_more_rewrites() {
        for k in 1..=4 {
            for a in 0..=3 {
                assert_eq!(
                    most_appends(k, a as i32),
                    binomial(k + a, a),
                    "k = {k} groups, a = {a} rewrites"
                );
            }
        }
    }

    #[derive(Debug, Clone)]
    enum SimOp {
        Append(u64),
        /// Rewrite row groups from `at` (modulo the count) over `len` of them, with `new`
        /// rows added and `drop` of their rows removed (an upsert, or a delete).
        Edit {
            at: usize,
            len: usize,
            new: u64,
            drop: u64,
        },
    }

    fn sim_op() -> impl Strategy<Value = SimOp> {
        prop_oneof![
            6 => (1u64..300).prop_map(SimOp::Append),
            1 => (any::<usize>(), 0usize..4, 0u64..200, 0u64..400)
                .prop_map(|(at, len, new, drop)| SimOp::Edit { at, len, new, drop }),
        ]
    }

    proptest! {
        /// Any mutations, any target, both rules: never an empty row group or one above
        /// target, rows conserved, no stranding, and under the tiered rule a tail of the
        /// documented shape after appends.
        #[test]
        fn random_mutations_keep_the_layout_rules(
            target in 1u64..2_000,
            fan_in in 2u64..9,
            max in prop::option::of(0u32..4),
            ops in prop::collection::vec(sim_op(), 1..120),
        ) {
            let rule = max.map_or(Coalescing::Tiered { fan_in }, Coalescing::MaxOffTarget);
            let mut sim = Sim::new(target, rule);
            let mut total = 0u64;
            for op in &ops {
                match *op {
                    SimOp::Append(d) => {
                        sim.append(d);
                        total += d;
                    }
                    SimOp::Edit { at, len, new, drop } => {
                        let n = sim.rows.len();
                        let a = if n == 0 { 0 } else { at % n };
                        let b = (a + len).min(n);
                        let read: u64 = sim.rows[a..b].iter().sum();
                        let drop = drop.min(read);
                        sim.edit(a, b, read - drop, new);
                        total = total + new - drop;
                    }
                }
                prop_assert_eq!(sim.rows.iter().sum::<u64>(), total);
                prop_assert!(sim.rows.iter().all(|&r| r > 0 && r <= target), "{:?}", sim.rows);
                if let Err(e) = no_stranding(&sim) {
                    prop_assert!(false, "{:?} after {:?}: {}", rule, op, e);
                }
                let tail = sim.tail();
                match rule {
                    Coalescing::MaxOffTarget(m) => {
                        prop_assert!(tail.len() <= (m as usize).max(1), "{:?}", sim.rows);
                    }
                    Coalescing::Tiered { fan_in } => {
                        let bound = tiered_tail_bound(target, fan_in, 1);
                        prop_assert!(tail.len() <= bound, "{:?}", sim.rows);
                        if let Err(e) = tiered_shape(tail, target, fan_in) {
                            prop_assert!(false, "after {:?}: {}", op, e);
                        }
                    }
                }
            }
        }
    }
}
