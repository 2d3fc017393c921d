//! Turning a byte stream into valid UTF-8: invalid bytes become U+FFFD and a character split
//! across two writes is held until its last byte arrives.

/// U+FFFD REPLACEMENT CHARACTER, UTF-8 encoded.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// The streaming repairer; holds at most the three first bytes of an unfinished character.
#[derive(Debug, Default)]
pub struct Utf8Repair {
    /// The start of a character whose remaining bytes have not arrived yet.
    held: Vec<u8>,
}

impl Utf8Repair {
    /// Bytes held back as the start of an unfinished character.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Appends the valid UTF-8 form of `data` to `out`, holding back an unfinished character.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut rest = data;

        // Finish the character held from the last write, one byte at a time (at most 3).
        while !self.held.is_empty() && !rest.is_empty() {
            self.held.push(rest[0]);
            rest = &rest[1..];
            let held = std::mem::take(&mut self.held);
            let pending = repair(&held, out);
            self.held.extend_from_slice(pending);
        }
        if self.held.is_empty() {
            let pending = repair(rest, out);
            self.held.extend_from_slice(pending);
        }
    }

    /// Emits what is held back as U+FFFD, as at the end of a stage.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if !self.held.is_empty() {
            out.extend_from_slice(REPLACEMENT);
            self.held.clear();
        }
    }
}

/// Appends the repaired form of `bytes` to `out` and returns an unfinished character at the end.
fn repair<'a>(mut bytes: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
    loop {
        match std::str::from_utf8(bytes) {
            Ok(_) => {
                out.extend_from_slice(bytes);
                return &[];
            }
            Err(err) => {
                let (valid, after) = bytes.split_at(err.valid_up_to());
                out.extend_from_slice(valid);
                match err.error_len() {
                    None => return after,
                    Some(bad) => {
                        out.extend_from_slice(REPLACEMENT);
                        bytes = &after[bad..];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repair_writes(writes: &[&[u8]]) -> String {
        let mut repairer = Utf8Repair::default();
        let mut out = Vec::new();
        for write in writes {
            repairer.write(write, &mut out);
        }
        repairer.flush(&mut out);
        String::from_utf8(out).expect("the repairer only emits UTF-8")
    }

    #[test]
    fn lone_invalid_byte_becomes_replacement_character() {
        assert_eq!(repair_writes(&[b"\xD4"]), "\u{FFFD}");
        assert_eq!(repair_writes(&[b"a\xFFb"]), "a\u{FFFD}b");
    }

    #[test]
    fn character_split_across_writes_comes_out_whole() {
        let mut repairer = Utf8Repair::default();
        let mut out = Vec::new();
        repairer.write(b"caf\xC3", &mut out);
        assert_eq!(out, b"caf");
        repairer.write(b"\xA9!", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "café!");
    }

    #[test]
    fn four_byte_character_split_into_single_bytes_comes_out_whole() {
        assert_eq!(repair_writes(&[b"\xF0", b"\x9F", b"\x98", b"\x80"]), "😀");
    }

    #[test]
    fn unfinished_character_followed_by_ascii_is_replaced() {
        assert_eq!(repair_writes(&[b"\xC3", b"x"]), "\u{FFFD}x");
        assert_eq!(repair_writes(&[b"\xE2\x82", b"ab"]), "\u{FFFD}ab");
    }

    #[test]
    fn unfinished_character_at_stage_end_is_replaced() {
        assert_eq!(repair_writes(&[b"ok\xE2\x82"]), "ok\u{FFFD}");
    }
}
