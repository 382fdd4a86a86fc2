//! Splitting text into pieces with a regex before BPE: merges never cross a piece boundary.

use fancy_regex::Regex;

/// GPT-4's split pattern (cl100k): the default, as in rustbpe 0.1.0.
pub const GPT4_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// nanochat's variant: digit runs capped at 2 (better for small vocabularies).
pub const SPLIT_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// A compiled split pattern.
#[derive(Debug, Clone)]
pub struct Splitter {
    pattern: String,
    regex: Regex,
}

impl Splitter {
    /// Compile `pattern`; the error message says why it does not compile.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("invalid split pattern {pattern:?}: {e}"))?;
        Ok(Splitter { pattern: pattern.to_owned(), regex })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Call `f` on every match of the pattern in `text`, left to right.
    #[inline]
    pub fn for_each_piece<'t, F: FnMut(&'t str)>(&self, text: &'t str, mut f: F) -> Result<(), String> {
        for m in self.regex.find_iter(text) {
            let m = m.map_err(|e| format!("regex matching failed: {e}"))?;
            f(m.as_str());
        }
        Ok(())
    }
}
