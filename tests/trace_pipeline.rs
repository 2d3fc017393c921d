//! The job output pipeline end to end: masking, UTF-8 repair, output limit and spool.

use std::io::Write;
use std::sync::Arc;

use alloy_runner::trace::{Spool, Style, TraceWriter};

const NO_LIMIT: u64 = u64::MAX;

fn writer(masks: &[&str], limit: u64) -> (TraceWriter, Arc<Spool>) {
    let spool = Spool::new().unwrap();
    let masks = masks.iter().map(|m| m.to_string()).collect();
    (TraceWriter::new(Arc::clone(&spool), masks, limit), spool)
}

fn contents(spool: &Spool) -> Vec<u8> {
    let mut out = Vec::new();
    let copied = spool.copy_all_to(&mut out).unwrap();
    assert_eq!(copied, spool.len());
    out
}

fn text(spool: &Spool) -> String {
    String::from_utf8(contents(spool)).expect("the trace is always valid UTF-8")
}

fn notice(limit: u64) -> String {
    format!(
        "\nJob's log exceeded limit of {limit} bytes.\n\
         Job execution will continue but no more output will be collected.\n"
    )
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn masks_values_split_across_reads() {
    let (mut w, spool) = writer(&["split", "all", "values", "are", "masked"], NO_LIMIT);
    for read in ["sp", "lit al", "l val", "ues ar", "e ", "mask", "ed"] {
        w.write_all(read.as_bytes()).unwrap();
    }
    w.flush_pending();
    assert_eq!(text(&spool), "[MASKED] [MASKED] [MASKED] [MASKED] [MASKED]");
}

#[test]
fn longest_overlapping_mask_wins() {
    let (mut w, spool) = writer(&["token", "token-extended"], NO_LIMIT);
    w.write_all(b"use token-exten").unwrap();
    w.write_all(b"ded and token.").unwrap();
    w.flush_pending();
    assert_eq!(text(&spool), "use [MASKED] and [MASKED].");
}

#[test]
fn empty_mask_is_ignored() {
    let (mut w, spool) = writer(&["", "pw"], NO_LIMIT);
    w.write_all(b"user pw ok").unwrap();
    w.flush_pending();
    assert_eq!(text(&spool), "user [MASKED] ok");
}

#[test]
fn mask_split_at_every_possible_boundary_is_masked() {
    let input = b"head s3cr3t-value tail s3cr3t-value";
    for cut in 0..=input.len() {
        let (mut w, spool) = writer(&["s3cr3t-value"], NO_LIMIT);
        w.write_all(&input[..cut]).unwrap();
        w.write_all(&input[cut..]).unwrap();
        w.flush_pending();
        assert_eq!(text(&spool), "head [MASKED] tail [MASKED]", "cut at {cut}");
    }
}

#[test]
fn random_read_boundaries_give_the_same_trace_as_one_read() {
    let masks = ["ab", "abcab", "ba", "cc", "\u{e9}t\u{e9}"];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let alphabet: &[&[u8]] = &[b"a", b"b", b"c", b" ", "\u{e9}".as_bytes(), b"t", b"\xff"];
    for _ in 0..200 {
        let mut input = Vec::new();
        for _ in 0..rng.below(80) {
            input.extend_from_slice(alphabet[rng.below(alphabet.len())]);
        }

        let (mut whole, whole_spool) = writer(&masks, NO_LIMIT);
        whole.write_all(&input).unwrap();
        whole.flush_pending();

        let (mut pieces, pieces_spool) = writer(&masks, NO_LIMIT);
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(7));
            pieces.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        pieces.flush_pending();
        assert_eq!(
            contents(&pieces_spool),
            contents(&whole_spool),
            "input {input:?}"
        );
        assert!(
            !text(&whole_spool).contains("ab"),
            "unmasked value in {input:?}"
        );
    }
}

#[test]
fn lone_invalid_byte_becomes_replacement_character() {
    let (mut w, spool) = writer(&[], NO_LIMIT);
    w.write_all(b"\xD4").unwrap();
    w.flush_pending();
    assert_eq!(text(&spool), "\u{FFFD}");
}

#[test]
fn character_split_across_two_writes_comes_out_whole() {
    let (mut w, spool) = writer(&[], NO_LIMIT);
    w.write_all(b"caf\xC3").unwrap();
    assert_eq!(text(&spool), "caf");
    w.write_all(b"\xA9\n").unwrap();
    assert_eq!(text(&spool), "caf\u{e9}\n");
}

#[test]
fn invalid_byte_is_replaced_after_masking() {
    // Masking sees the raw bytes, so a mask written with U+FFFD does not match the repaired text.
    let (mut w, spool) = writer(&["a\u{FFFD}b"], NO_LIMIT);
    w.write_all(b"a\xFFb").unwrap();
    w.flush_pending();
    assert_eq!(text(&spool), "a\u{FFFD}b");
}

#[test]
fn limit_never_splits_a_multi_byte_character() {
    let (mut w, spool) = writer(&[], 5);
    w.write_all("\u{e9}\u{e9}\u{e9}".as_bytes()).unwrap();
    w.flush_pending();
    assert_eq!(text(&spool), format!("\u{e9}\u{e9}{}", notice(5)));
}

#[test]
fn limit_notice_is_appended_once_and_writes_keep_succeeding() {
    let (mut w, spool) = writer(&[], 4);
    w.write_all(b"a\xFFb").unwrap();
    assert!(w.limit_reached());
    for _ in 0..1000 {
        assert_eq!(w.write(b"more output\n").unwrap(), 12);
    }
    w.line("job finished").unwrap();
    w.flush_pending();
    assert!(w.limit_reached());
    assert_eq!(text(&spool), format!("a\u{FFFD}{}", notice(4)));
}

#[test]
fn carriage_returns_and_ansi_escapes_pass_through_without_added_newline() {
    let (mut w, spool) = writer(&["x"], NO_LIMIT);
    let raw = "\x1b[0K\x1b[32;1mprogress 10%\r\x1b[0Kprogress 100%";
    w.write_all(raw.as_bytes()).unwrap();
    w.flush_pending();
    assert_eq!(text(&spool), raw);
}

#[test]
fn runner_lines_follow_pending_stage_output_and_are_coloured() {
    let (mut w, spool) = writer(&["hunter2"], NO_LIMIT);
    w.write_all(b"partial hunt").unwrap();
    w.styled_line(Style::Notice, "Job succeeded with hunter2")
        .unwrap();
    assert_eq!(
        text(&spool),
        "partial hunt\x1b[32;1mJob succeeded with [MASKED]\x1b[0;m\n"
    );
}

#[test]
fn clones_write_into_the_same_trace() {
    let (w, spool) = writer(&[], NO_LIMIT);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let mut w = w.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    w.write_all(format!("{i}").as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let out = contents(&spool);
    assert_eq!(out.len(), 400);
    assert_eq!(out.iter().filter(|&&b| b == b'3').count(), 100);
}

#[test]
fn several_mebibytes_go_through_the_spool_and_read_back_at_any_offset() {
    let (mut w, spool) = writer(&["secret"], NO_LIMIT);
    let line: Vec<u8> = (0..250u32)
        .map(|i| b'a' + (i % 26) as u8)
        .chain([b'\n'])
        .collect();
    let lines = 5 * 1024 * 1024 / line.len();
    for _ in 0..lines {
        w.write_all(&line).unwrap();
        assert!(w.held_back() < "secret".len());
    }
    w.flush_pending();
    assert_eq!(spool.len(), (lines * line.len()) as u64);

    let mut rng = XorShift(42);
    for _ in 0..200 {
        let offset = rng.below(spool.len() as usize);
        let mut buf = vec![0u8; 1 + rng.below(9000)];
        let got = spool.read_at(offset as u64, &mut buf).unwrap();
        assert_eq!(got, buf.len().min(spool.len() as usize - offset));
        for (k, byte) in buf[..got].iter().enumerate() {
            assert_eq!(
                *byte,
                line[(offset + k) % line.len()],
                "offset {}",
                offset + k
            );
        }
    }
    assert_eq!(spool.read_at(spool.len(), &mut [0u8; 8]).unwrap(), 0);
}

#[test]
fn one_huge_write_without_newline_is_masked_and_held_back_stays_bounded() {
    let masks = ["needle-in-the-haystack", "needle"];
    let (mut w, spool) = writer(&masks, NO_LIMIT);
    let mut big = vec![b'n'; 8 * 1024 * 1024];
    big.extend_from_slice(b"needle-in-the-hay");
    w.write_all(&big).unwrap();
    assert!(w.held_back() < masks[0].len());
    w.write_all(b"stack!").unwrap();
    w.flush_pending();
    assert_eq!(spool.len(), 8 * 1024 * 1024 + "[MASKED]!".len() as u64);
    let mut tail = [0u8; 9];
    spool.read_at(spool.len() - 9, &mut tail).unwrap();
    assert_eq!(&tail, b"[MASKED]!");
}

#[test]
fn spool_file_is_not_left_in_the_temporary_directory() {
    let before = spool_files();
    let spool = Spool::new().unwrap();
    spool.append(b"data").unwrap();
    drop(spool);
    assert!(spool_files().is_subset(&before));
}

fn spool_files() -> std::collections::BTreeSet<String> {
    let pid = format!("alloy-trace-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(&pid))
        .collect()
}
