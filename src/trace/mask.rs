//! Replacing masked variable values with `[MASKED]` in a byte stream cut into arbitrary reads.
//!
//! An Aho-Corasick automaton reads each byte once. Bytes that can no longer be part of a value
//! are emitted at the end of each write; only the trailing bytes that could still start one are
//! held back, never more than the longest value. Every occurrence is masked, the longest wins
//! where several end or start together, and overlapping occurrences merge into one `[MASKED]`,
//! so no part of any value leaks out; occurrences that merely touch stay separate.

use std::collections::VecDeque;

use super::automaton::{Automaton, State, ROOT};

/// What a masked value becomes in the trace.
pub const MASKED: &[u8] = b"[MASKED]";

/// A stretch of the stream covered by overlapping occurrences, in absolute stream positions.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u64,
    /// First position after the run.
    end: u64,
    /// Whether its `[MASKED]` has been emitted already.
    announced: bool,
}

/// The streaming masker: the automaton, its state, the held-back tail and the pending runs.
#[derive(Debug)]
pub struct Masker {
    /// `None` when there is nothing to mask.
    automaton: Option<Automaton>,
    state: State,
    /// Bytes not yet emitted, starting at stream position `held_at`.
    held: Vec<u8>,
    held_at: u64,
    /// Runs not yet fully emitted, in stream order.
    runs: VecDeque<Run>,
    /// Reused buffer for the next held tail.
    spare: Vec<u8>,
}

impl Masker {
    /// A masker for these values; empty and repeated values are ignored.
    pub fn new(masks: &[String]) -> Masker {
        let mut values: Vec<Vec<u8>> = masks
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| m.as_bytes().to_vec())
            .collect();
        values.sort();
        values.dedup();
        Masker {
            automaton: (!values.is_empty()).then(|| Automaton::new(&values)),
            state: ROOT,
            held: Vec::new(),
            held_at: 0,
            runs: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// Bytes held back because they may be the start of a masked value.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Masks `data` and appends what is decided to `out`, holding back a possible value start.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let Some(automaton) = &self.automaton else {
            out.extend_from_slice(data);
            return;
        };

        // Find the occurrences ending in `data`.
        let data_at = self.held_at + self.held.len() as u64;
        let mut state = self.state;
        for (i, &byte) in data.iter().enumerate() {
            state = automaton.next(state, byte);
            let len = automaton.matched(state);
            if len > 0 {
                let end = data_at + i as u64 + 1;
                add_run(&mut self.runs, end - len as u64, end);
            }
        }
        self.state = state;

        // Everything before the bytes that may still start a value is decided.
        let end = data_at + data.len() as u64;
        let decided = end - automaton.depth(state) as u64;
        self.emit(data, decided, out);
    }

    /// Decides and emits everything held back, as at the end of a stage.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        let end = self.held_at + self.held.len() as u64;
        self.emit(&[], end, out);
        self.state = ROOT;
    }

    /// Emits the stream (held bytes then `data`) up to position `decided`, runs replaced, and
    /// keeps the rest as the held tail.
    fn emit(&mut self, data: &[u8], decided: u64, out: &mut Vec<u8>) {
        let view = View {
            held: &self.held,
            held_at: self.held_at,
            data,
        };
        let mut at = self.held_at;
        while at < decided {
            let Some(run) = self.runs.front_mut().filter(|run| run.start < decided) else {
                view.copy(at, decided, out);
                break;
            };
            if at < run.start {
                view.copy(at, run.start, out);
            }
            if !run.announced {
                out.extend_from_slice(MASKED);
                run.announced = true;
            }
            at = at.max(run.end.min(decided));
            if run.end <= decided {
                self.runs.pop_front();
            }
        }

        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        view.copy(decided, view.end(), &mut next);
        self.spare = std::mem::replace(&mut self.held, next);
        self.held_at = decided;
    }
}

/// Records the occurrence `[start, end)`, merging it with the pending runs it overlaps. Ends
/// arrive in increasing order, so only the last runs can overlap it.
fn add_run(runs: &mut VecDeque<Run>, start: u64, end: u64) {
    let mut run = Run {
        start,
        end,
        announced: false,
    };
    while let Some(last) = runs.back() {
        if last.end <= run.start {
            break;
        }
        run.start = run.start.min(last.start);
        run.announced |= last.announced;
        runs.pop_back();
    }
    runs.push_back(run);
}

/// The held bytes followed by the new data, addressed by stream position.
struct View<'a> {
    held: &'a [u8],
    held_at: u64,
    data: &'a [u8],
}

impl View<'_> {
    /// Position just after the last byte.
    fn end(&self) -> u64 {
        self.held_at + (self.held.len() + self.data.len()) as u64
    }

    /// Appends the bytes at positions `[from, to)` to `out`.
    fn copy(&self, from: u64, to: u64, out: &mut Vec<u8>) {
        let split = self.held_at + self.held.len() as u64;
        // Offsets below are within the held tail or the current write, both in memory.
        let offset = |pos: u64, base: u64| (pos - base) as usize;
        if from < split {
            let stop = to.min(split);
            out.extend_from_slice(
                &self.held[offset(from, self.held_at)..offset(stop, self.held_at)],
            );
        }
        if to > split {
            let begin = from.max(split);
            out.extend_from_slice(&self.data[offset(begin, split)..offset(to, split)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_reads(masks: &[&str], reads: &[&[u8]]) -> String {
        let masks: Vec<String> = masks.iter().map(|m| m.to_string()).collect();
        let mut masker = Masker::new(&masks);
        let mut out = Vec::new();
        for read in reads {
            masker.write(read, &mut out);
        }
        masker.flush(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks_values_split_across_reads() {
        let reads: &[&[u8]] = &[b"sp", b"lit al", b"l val", b"ues ar", b"e ", b"mask", b"ed"];
        let out = mask_reads(&["split", "all", "values", "are", "masked"], reads);
        assert_eq!(out, "[MASKED] [MASKED] [MASKED] [MASKED] [MASKED]");
    }

    #[test]
    fn longest_mask_wins_at_the_same_start() {
        assert_eq!(
            mask_reads(&["sec", "secret"], &[b"a secret b"]),
            "a [MASKED] b"
        );
        assert_eq!(
            mask_reads(&["secret", "sec"], &[b"a sec", b"ret b"]),
            "a [MASKED] b"
        );
    }

    #[test]
    fn shorter_mask_applies_when_longer_one_fails_at_the_end() {
        assert_eq!(mask_reads(&["sec", "secret"], &[b"x secr"]), "x [MASKED]r");
    }

    #[test]
    fn overlapping_occurrences_merge_into_one_replacement() {
        assert_eq!(mask_reads(&["abc", "cdef"], &[b"<abcdef>"]), "<[MASKED]>");
        assert_eq!(mask_reads(&["aa"], &[b"aaaaa", b"aaaa!"]), "[MASKED]!");
    }

    #[test]
    fn adjacent_occurrences_stay_separate() {
        assert_eq!(mask_reads(&["ab", "cd"], &[b"abcd"]), "[MASKED][MASKED]");
    }

    #[test]
    fn empty_mask_is_ignored() {
        assert_eq!(mask_reads(&["", "x"], &[b"a x b"]), "a [MASKED] b");
        assert_eq!(mask_reads(&[""], &[b"plain"]), "plain");
    }

    #[test]
    fn held_bytes_stay_shorter_than_the_longest_mask() {
        let mut masker = Masker::new(&["abcdef".to_string()]);
        let mut out = Vec::new();
        for _ in 0..1000 {
            masker.write(b"xxabcde", &mut out);
            assert!(masker.held() < 6, "held {}", masker.held());
        }
    }

    #[test]
    fn longer_value_starting_earlier_absorbs_a_shorter_one() {
        assert_eq!(mask_reads(&["bc", "abcd"], &[b"xab", b"cdx"]), "x[MASKED]x");
        assert_eq!(mask_reads(&["ab", "cd", "abcde"], &[b"abcde"]), "[MASKED]");
        assert_eq!(
            mask_reads(&["ab", "cd", "abcde"], &[b"abcd!"]),
            "[MASKED][MASKED]!"
        );
    }

    #[test]
    fn repeated_long_value_is_masked_in_linear_time() {
        // A naive scan compares the whole value at every byte here: 1 MiB x 4 KiB.
        let value = "a".repeat(4096);
        let mut masker = Masker::new(&[value]);
        let mut out = Vec::new();
        masker.write(&vec![b'a'; 1 << 20], &mut out);
        masker.write(b"!", &mut out);
        assert_eq!(out, b"[MASKED]!");
    }

    /// All occurrences as intervals, overlapping ones merged, each run replaced once.
    fn reference(masks: &[&str], input: &[u8]) -> Vec<u8> {
        let mut covered: Vec<(usize, usize)> = Vec::new();
        for start in 0..input.len() {
            for mask in masks.iter().filter(|m| !m.is_empty()) {
                if input[start..].starts_with(mask.as_bytes()) {
                    covered.push((start, start + mask.len()));
                }
            }
        }
        covered.sort();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (start, end) in covered {
            match runs.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => runs.push((start, end)),
            }
        }
        let (mut out, mut at) = (Vec::new(), 0);
        for (start, end) in runs {
            out.extend_from_slice(&input[at..start]);
            out.extend_from_slice(MASKED);
            at = end;
        }
        out.extend_from_slice(&input[at..]);
        out
    }

    #[test]
    fn matches_a_plain_reference_on_random_input_and_cuts() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let pool = ["a", "ab", "aab", "ba", "abab", "bbb", "abc", "ca", "cab"];
        for _ in 0..2000 {
            let masks: Vec<&str> = (0..1 + next(4)).map(|_| pool[next(pool.len())]).collect();
            let input: Vec<u8> = (0..next(40)).map(|_| b"abc "[next(4)]).collect();
            let mut reads = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = 1 + next(rest.len());
                reads.push(&rest[..n]);
                rest = &rest[n..];
            }
            let expected = String::from_utf8(reference(&masks, &input)).unwrap();
            assert_eq!(
                mask_reads(&masks, &reads),
                expected,
                "masks {masks:?} reads {reads:?}"
            );
        }
    }

    #[test]
    fn run_reaching_into_held_tail_is_not_replaced_twice() {
        let reads: &[&[u8]] = &[b"aaa", b"a", b"ab"];
        assert_eq!(mask_reads(&["aaa", "aab"], reads), "[MASKED]");
    }
}
