//! Text from input, quoted in messages within bounds: a 50 MB key named in
//! an error is its first characters and a count, not 50 MB on stderr.
//!
//! Public for the `wfhost` binary, which words its messages the same way;
//! hidden from the library's documentation, not part of its API.

use std::borrow::Cow;

/// `text`, or its first `max_chars` characters and how many more there
/// were.
pub fn clipped(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => {
            let more = text[cut..].chars().count();
            Cow::Owned(format!("{}… ({more} more characters)", &text[..cut]))
        }
    }
}

/// `text` cut to at most `max_bytes` bytes (at a character's boundary),
/// with `marker` after the cut when there was one.
pub fn truncated(mut text: String, max_bytes: usize, marker: &str) -> String {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(marker);
    }
    text
}

/// The first `max` of `lines`, one per line, and a line saying how many
/// more there were.
pub fn first_lines(lines: impl ExactSizeIterator<Item = String>, max: usize) -> String {
    let total = lines.len();
    let mut shown: Vec<String> = lines.take(max).collect();
    if total > max {
        shown.push(format!("… and {} more", total - max));
    }
    shown.join("\n")
}

/// `n` with its thousands separated by commas: `20,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(6367), "6,367");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn long_text_is_cut_with_a_count() {
        assert_eq!(clipped("short", 8), "short");
        assert_eq!(clipped("ééééé", 2), "éé… (3 more characters)");
        let lines = (0..5).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(
            first_lines(lines.clone().into_iter(), 2),
            "0\n1\n… and 3 more"
        );
        assert_eq!(first_lines(lines.into_iter(), 9), "0\n1\n2\n3\n4");
    }
}
