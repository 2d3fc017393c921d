//! The output limit: once the trace reaches it, a notice is appended once and every later byte
//! is dropped, while writes keep succeeding so the job runs on to its real result.

/// Cuts valid UTF-8 output at a byte limit without splitting a character.
#[derive(Debug)]
pub struct OutputLimit {
    /// The limit in bytes.
    limit: u64,
    /// Bytes let through so far (the notice not included).
    passed: u64,
    /// Whether the notice has been appended.
    reached: bool,
}

impl OutputLimit {
    /// A limit of `limit` bytes of job output.
    pub fn new(limit: u64) -> OutputLimit {
        OutputLimit {
            limit,
            passed: 0,
            reached: false,
        }
    }

    /// Whether the limit was reached and output is being dropped.
    pub fn reached(&self) -> bool {
        self.reached
    }

    /// The part of `text` (valid UTF-8) that fits, followed by the notice when the limit is
    /// reached by this write.
    pub fn apply<'a>(&mut self, text: &'a [u8]) -> (&'a [u8], Option<String>) {
        if self.reached || text.is_empty() {
            return (&[], None);
        }
        let room = self.limit - self.passed;
        if text.len() as u64 <= room {
            self.passed += text.len() as u64;
            return (text, None);
        }

        // `room` is smaller than `text.len()`, so it fits in usize.
        let mut cut = room as usize;
        while cut > 0 && is_continuation(text[cut]) {
            cut -= 1;
        }
        self.passed += cut as u64;
        self.reached = true;
        (&text[..cut], Some(notice(self.limit)))
    }
}

/// Whether `byte` continues a multi-byte UTF-8 character.
fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// The lines appended once when the limit is reached.
fn notice(limit: u64) -> String {
    format!(
        "\nJob's log exceeded limit of {limit} bytes.\n\
         Job execution will continue but no more output will be collected.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_under_the_limit_passes_whole() {
        let mut limit = OutputLimit::new(10);
        assert_eq!(limit.apply(b"0123456789"), (&b"0123456789"[..], None));
        assert!(!limit.reached());
    }

    #[test]
    fn cut_backs_off_to_a_character_boundary() {
        let mut limit = OutputLimit::new(4);
        let (kept, notice) = limit.apply("aé€".as_bytes());
        assert_eq!(kept, "aé".as_bytes());
        assert_eq!(
            notice.as_deref(),
            Some(
                "\nJob's log exceeded limit of 4 bytes.\n\
                 Job execution will continue but no more output will be collected.\n"
            )
        );
    }

    #[test]
    fn notice_comes_once_and_later_output_is_dropped() {
        let mut limit = OutputLimit::new(2);
        assert!(limit.apply(b"abc").1.is_some());
        assert_eq!(limit.apply(b"def"), (&b""[..], None));
        assert!(limit.reached());
    }
}
