//! An Aho-Corasick automaton over the masked values: one transition per byte of output tells
//! the longest value ending at that byte and how many trailing bytes could still start one.

use std::collections::VecDeque;

/// Index of a state; the root is 0.
pub type State = u32;

/// The root: nothing of any value has been seen.
pub const ROOT: State = 0;

/// The automaton's tables, one entry per state (a prefix of some value).
#[derive(Debug)]
pub struct Automaton {
    /// Transitions of the root, dense because it is the busiest state.
    root: Box<[State; 256]>,
    /// Transitions of every state, sorted by byte.
    children: Vec<Vec<(u8, State)>>,
    /// The state of the longest proper suffix that is also a prefix of some value.
    fail: Vec<State>,
    /// Length of the state's prefix.
    depth: Vec<u32>,
    /// Length of the longest value that ends at this state, 0 when none does.
    matched: Vec<u32>,
}

impl Automaton {
    /// Builds the automaton for `values` (none of them empty).
    pub fn new(values: &[Vec<u8>]) -> Automaton {
        let mut automaton = Automaton {
            root: Box::new([ROOT; 256]),
            children: vec![Vec::new()],
            fail: vec![ROOT],
            depth: vec![0],
            matched: vec![0],
        };
        for value in values {
            automaton.insert(value);
        }
        for &(byte, child) in &automaton.children[0] {
            automaton.root[usize::from(byte)] = child;
        }
        automaton.link_failures();
        automaton
    }

    /// The state after reading `byte` in `state`.
    pub fn next(&self, mut state: State, byte: u8) -> State {
        loop {
            if state == ROOT {
                return self.root[usize::from(byte)];
            }
            let children = &self.children[state as usize];
            if let Ok(i) = children.binary_search_by_key(&byte, |&(b, _)| b) {
                return children[i].1;
            }
            state = self.fail[state as usize];
        }
    }

    /// Length of the longest value ending at `state` (0 when none).
    pub fn matched(&self, state: State) -> usize {
        self.matched[state as usize] as usize
    }

    /// How many of the last bytes read could still be the start of a value.
    pub fn depth(&self, state: State) -> usize {
        self.depth[state as usize] as usize
    }

    /// Adds one value to the trie.
    fn insert(&mut self, value: &[u8]) {
        let mut state = ROOT;
        for &byte in value {
            let children = &self.children[state as usize];
            state = match children.binary_search_by_key(&byte, |&(b, _)| b) {
                Ok(i) => children[i].1,
                Err(i) => {
                    let child = self.add_state(self.depth[state as usize] + 1);
                    self.children[state as usize].insert(i, (byte, child));
                    child
                }
            };
        }
        let len = self.depth[state as usize];
        self.matched[state as usize] = len;
    }

    /// A new state of the given depth.
    fn add_state(&mut self, depth: u32) -> State {
        // Values come from job variables; their total length is far below u32::MAX.
        let state = State::try_from(self.children.len()).unwrap_or(State::MAX);
        self.children.push(Vec::new());
        self.fail.push(ROOT);
        self.depth.push(depth);
        self.matched.push(0);
        state
    }

    /// Sets each state's failure link, breadth first, and inherits the longest match along it.
    fn link_failures(&mut self) {
        let mut queue: VecDeque<State> = self.children[0].iter().map(|&(_, s)| s).collect();
        while let Some(state) = queue.pop_front() {
            let children = self.children[state as usize].clone();
            for (byte, child) in children {
                let fail = self.next(self.fail[state as usize], byte);
                self.fail[child as usize] = fail;
                let inherited = self.matched[fail as usize];
                let own = &mut self.matched[child as usize];
                *own = (*own).max(inherited);
                queue.push_back(child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(automaton: &Automaton, text: &[u8]) -> Vec<(usize, usize)> {
        let mut state = ROOT;
        text.iter()
            .map(|&b| {
                state = automaton.next(state, b);
                (automaton.matched(state), automaton.depth(state))
            })
            .collect()
    }

    #[test]
    fn reports_longest_value_ending_at_each_byte() {
        let automaton = Automaton::new(&[b"he".to_vec(), b"she".to_vec(), b"hers".to_vec()]);
        let steps = run(&automaton, b"ushers");
        let matched: Vec<usize> = steps.iter().map(|s| s.0).collect();
        assert_eq!(matched, [0, 0, 0, 3, 0, 4]);
    }

    #[test]
    fn depth_counts_bytes_that_may_still_start_a_value() {
        let automaton = Automaton::new(&[b"abcd".to_vec()]);
        let depths: Vec<usize> = run(&automaton, b"xabcabcd").iter().map(|s| s.1).collect();
        assert_eq!(depths, [0, 1, 2, 3, 1, 2, 3, 4]);
    }
}
