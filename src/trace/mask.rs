//! Replacing masked variable values with `[MASKED]` in a byte stream cut into arbitrary reads.
//!
//! The scan looks at each byte once, skipping fast over bytes no mask starts with. Only a tail
//! that could still grow into a mask is held back, so the held bytes stay shorter than the
//! longest mask. Where several masks start at the same byte the longest wins; occurrences that
//! overlap are merged into one `[MASKED]`, so no part of any secret leaks out.

/// What a masked value becomes in the trace.
pub const MASKED: &[u8] = b"[MASKED]";

/// The streaming masker: the masks, the held tail and how far the current masked run reaches.
#[derive(Debug)]
pub struct Masker {
    /// Distinct non-empty masks, grouped by first byte, longest first within a group.
    masks: Vec<Vec<u8>>,
    /// For each byte value, the range of `masks` starting with it (empty when none does).
    by_first: Box<[(usize, usize); 256]>,
    /// Bytes not yet decided: the start of a possible mask at the end of the last write.
    held: Vec<u8>,
    /// Bytes at the start of `held` + next data that lie in a run already replaced.
    covered: usize,
    /// Reused buffer that joins `held` and the next write.
    joined: Vec<u8>,
}

impl Masker {
    /// A masker for these values; empty and repeated values are ignored.
    pub fn new(masks: &[String]) -> Masker {
        let mut list: Vec<Vec<u8>> = masks
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| m.as_bytes().to_vec())
            .collect();
        list.sort_by(|a, b| {
            a[0].cmp(&b[0])
                .then(b.len().cmp(&a.len()))
                .then_with(|| a.cmp(b))
        });
        list.dedup();

        let mut by_first = Box::new([(0, 0); 256]);
        for (index, mask) in list.iter().enumerate() {
            let range = &mut by_first[usize::from(mask[0])];
            if range.0 == range.1 {
                *range = (index, index);
            }
            range.1 = index + 1;
        }
        Masker {
            masks: list,
            by_first,
            held: Vec::new(),
            covered: 0,
            joined: Vec::new(),
        }
    }

    /// Bytes held back because they may be the start of a mask.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Masks `data` and appends what is decided to `out`, holding back a possible mask start.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.masks.is_empty() {
            out.extend_from_slice(data);
            return;
        }
        if self.held.is_empty() {
            let used = self.scan(data, false, out);
            self.held.extend_from_slice(&data[used..]);
            return;
        }

        let mut joined = std::mem::take(&mut self.joined);
        joined.clear();
        joined.extend_from_slice(&self.held);
        joined.extend_from_slice(data);
        let used = self.scan(&joined, false, out);
        self.held.clear();
        self.held.extend_from_slice(&joined[used..]);
        self.joined = joined;
    }

    /// Decides and emits everything held back, as at the end of a stage.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.held);
        let used = self.scan(&held, true, out);
        debug_assert_eq!(used, held.len());
        self.covered = 0;
        self.held = held;
        self.held.clear();
    }

    /// Scans `buf`, appends the decided output and returns how many bytes were decided.
    fn scan(&mut self, buf: &[u8], last: bool, out: &mut Vec<u8>) -> usize {
        let mut covered = self.covered;
        let mut plain_from = covered.min(buf.len());
        let mut at = 0;
        while at < buf.len() {
            let (first, end) = self.by_first[usize::from(buf[at])];
            if first == end {
                at += 1;
                continue;
            }
            let candidates = &self.masks[first..end];
            if !last && may_grow(candidates, &buf[at..]) {
                break;
            }
            if let Some(len) = longest_match(candidates, &buf[at..]) {
                if at >= covered {
                    out.extend_from_slice(&buf[plain_from..at]);
                    out.extend_from_slice(MASKED);
                }
                covered = covered.max(at + len);
                plain_from = covered;
            }
            at += 1;
        }
        if plain_from < at {
            out.extend_from_slice(&buf[plain_from..at]);
        }
        self.covered = covered.saturating_sub(at);
        at
    }
}

/// Whether `tail` (the end of what has arrived) could still be the start of one of `masks`
/// (sorted longest first) longer than itself, so the decision at its first byte must wait.
fn may_grow(masks: &[Vec<u8>], tail: &[u8]) -> bool {
    let longest = masks.first().map_or(0, Vec::len);
    tail.len() < longest
        && masks
            .iter()
            .any(|m| m.len() > tail.len() && m.starts_with(tail))
}

/// Length of the longest of `masks` (sorted longest first) found at the start of `rest`.
// TODO: output repeating a long mask's own prefix (a value of 4 KiB of `a` against a stream of
// `a`) costs up to the mask's length per byte here; an Aho-Corasick automaton would keep that
// case linear too. Real secrets rarely repeat, so the simple comparison stays for now.
fn longest_match(masks: &[Vec<u8>], rest: &[u8]) -> Option<usize> {
    masks.iter().find(|m| rest.starts_with(m)).map(Vec::len)
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
    fn run_reaching_into_held_tail_is_not_replaced_twice() {
        let reads: &[&[u8]] = &[b"aaa", b"a", b"ab"];
        assert_eq!(mask_reads(&["aaa", "aab"], reads), "[MASKED]");
    }
}
