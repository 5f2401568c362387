//! Tokenizers that carry their vocabularies in the binary: tiktoken's GPT-2, cl100k and o200k
//! (with a per-thread word cache and a linear-time path for long words) and UTF-8 bytes.

use serde::Serialize;

/// A tokenizer that carries its vocabulary in the binary (no download).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// GPT-2's BPE (`r50k_base`), 50257 ids, end of document 50256.
    Gpt2,
    /// `cl100k_base`, 100277 ids, end of document 100257.
    Cl100kBase,
    /// `o200k_base`, 200019 ids, end of document 199999.
    O200kBase,
    /// UTF-8 bytes as ids 0-255, end of document 256.
    Bytes,
}

impl Tokenizer {
    pub const NAMES: [&'static str; 4] = ["gpt2", "cl100k_base", "o200k_base", "bytes"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gpt2" | "r50k_base" => Some(Self::Gpt2),
            "cl100k_base" => Some(Self::Cl100kBase),
            "o200k_base" => Some(Self::O200kBase),
            "bytes" => Some(Self::Bytes),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gpt2 => "gpt2",
            Self::Cl100kBase => "cl100k_base",
            Self::O200kBase => "o200k_base",
            Self::Bytes => "bytes",
        }
    }

    /// Ids in the vocabulary, special tokens included (tiktoken's `n_vocab`).
    pub fn vocab_size(self) -> usize {
        match self {
            Self::Gpt2 => 50_257,
            Self::Cl100kBase => 100_277,
            Self::O200kBase => 200_019,
            Self::Bytes => 257,
        }
    }

    /// The `<|endoftext|>` id appended after each document.
    pub fn eod(self) -> u32 {
        match self {
            Self::Gpt2 => 50_256,
            Self::Cl100kBase => 100_257,
            Self::O200kBase => 199_999,
            Self::Bytes => 256,
        }
    }

    /// Encodes text as ordinary text: a literal `<|endoftext|>` in a document is not special.
    ///
    /// Gives exactly tiktoken's `encode_ordinary`, faster: the text is cut into words at
    /// single spaces (see [`words`]) and each short word's ids are cached per thread, so a
    /// word seen before costs one hash lookup instead of a regex scan and a BPE merge. A word
    /// over 4 KiB is encoded by a linear-time BPE encoder, to the same ids.
    pub fn encode(self, text: &str) -> Vec<u32> {
        if self == Self::Bytes {
            return text.bytes().map(u32::from).collect();
        }
        let slot = self as usize;
        WORD_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let cache = &mut cache[slot];
            if cache.len() > WORD_CACHE_ENTRIES {
                cache.clear();
            }
            let mut out = Vec::with_capacity(text.len() / 3);
            for word in words(text) {
                if word.len() > LONG_WORD {
                    self.encode_long(word, &mut out);
                } else if word.len() > WORD_CACHE_MAX_LEN {
                    out.extend(self.encode_uncached(word));
                } else if let Some(ids) = cache.get(word) {
                    out.extend_from_slice(ids);
                } else {
                    let ids = self.encode_uncached(word);
                    out.extend_from_slice(&ids);
                    cache.insert(word.into(), ids.into_boxed_slice());
                }
            }
            out
        })
    }

    /// tiktoken's own `encode_ordinary`, on the whole text.
    pub fn encode_uncached(self, text: &str) -> Vec<u32> {
        match self.core() {
            Some(core) => core.encode_ordinary(text),
            None => text.bytes().map(u32::from).collect(),
        }
    }

    fn core(self) -> Option<&'static tiktoken_rs::CoreBPE> {
        match self {
            Self::Gpt2 => Some(tiktoken_rs::r50k_base_singleton()),
            Self::Cl100kBase => Some(tiktoken_rs::cl100k_base_singleton()),
            Self::O200kBase => Some(tiktoken_rs::o200k_base_singleton()),
            Self::Bytes => None,
        }
    }

    /// Ordinary (non-special) ids: exactly `0..n` decode to bytes in tiktoken's vocabulary.
    fn ordinary_ids(self) -> u32 {
        match self {
            Self::Gpt2 => 50_256,
            Self::Cl100kBase => 100_256,
            Self::O200kBase => 199_998,
            Self::Bytes => 256,
        }
    }

    /// tiktoken's pre-tokenizer pattern (as tiktoken-rs 0.12 builds each `CoreBPE`).
    fn pattern(self) -> &'static str {
        match self {
            Self::Gpt2 | Self::Bytes => {
                r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"
            }
            Self::Cl100kBase => {
                r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
            }
            Self::O200kBase => tiktoken_rs::O200K_BASE_PAT_STR,
        }
    }

    /// Encodes one long word as tiktoken does, in time and memory linear in its length.
    ///
    /// tiktoken cuts text into pieces with its regex and runs BPE on each piece; a piece is
    /// unbounded (a run of letters is one `\p{L}+` piece), and tiktoken's merge of a large
    /// piece keeps a heap and about 56 bytes of state per byte, in O(n log n) time. Here the
    /// pieces are found with the same pattern by the same regex engine (`fancy-regex`, the
    /// version tiktoken-rs uses: one entry in `Cargo.lock`), so they are tiktoken's pieces,
    /// and each is encoded by GitHub's `bpe` backtracking encoder: linear time, a bit and a
    /// token per byte at most. That encoder computes the BPE encoding as tiktoken defines it
    /// (repeatedly merge the adjacent pair whose joined bytes have the lowest rank), built
    /// here from tiktoken's own vocabulary, id for id; its authors test it against
    /// tiktoken-rs, and so do we (`long_runs_encode_as_tiktoken`, `long_path_is_tiktokens`).
    /// Where that encoder cannot be built, or the regex gives up, tiktoken encodes the word.
    fn encode_long(self, word: &str, out: &mut Vec<u32>) {
        let Some(long) = LongPath::get(self) else {
            out.extend(self.encode_uncached(word));
            return;
        };
        let start = out.len();
        for piece in long.regex.find_iter(word) {
            let Ok(piece) = piece else {
                out.truncate(start);
                out.extend(self.encode_uncached(word));
                return;
            };
            out.extend(long.bpe.encode_via_backtracking(piece.as_str().as_bytes()));
        }
    }
}

/// Words longer than this (in bytes) are encoded by [`Tokenizer::encode_long`]: below it,
/// tiktoken's own BPE is as fast (its quadratic merge for pieces under 100 bytes, its heap
/// above) and needs no second vocabulary in memory.
const LONG_WORD: usize = 4096;

/// What [`Tokenizer::encode_long`] needs beyond tiktoken: its pattern, compiled, and a
/// linear-time encoder over the same vocabulary. Built on first use, once per tokenizer
/// (tens of MB and about a second for o200k), so text without long words never pays for it.
struct LongPath {
    regex: fancy_regex::Regex,
    bpe: bpe::byte_pair_encoding::BytePairEncoding,
}

impl LongPath {
    fn get(tok: Tokenizer) -> Option<&'static Self> {
        static PATHS: [std::sync::OnceLock<Option<LongPath>>; 3] =
            [const { std::sync::OnceLock::new() }; 3];
        PATHS
            .get(tok as usize)?
            .get_or_init(|| Self::build(tok))
            .as_ref()
    }

    fn build(tok: Tokenizer) -> Option<Self> {
        let core = tok.core()?;
        // Token `i` of the dictionary must be tiktoken's rank `i`: the ranks are the ids.
        let tokens = (0..tok.ordinary_ids())
            .map(|rank| core.decode_bytes(&[rank]).ok())
            .collect::<Option<Vec<_>>>()?;
        // Hash factors under which no two tokens of the vocabulary collide (`bpe` asserts
        // it): the ones `bpe-openai` ships for cl100k and o200k, and 1 for r50k as it did.
        let hash_factor = match tok {
            Tokenizer::Gpt2 => 1,
            _ => 17_846_336_922_010_275_747,
        };
        Some(Self {
            regex: fancy_regex::Regex::new(tok.pattern()).ok()?,
            bpe: bpe::byte_pair_encoding::BytePairEncoding::from_dictionary(
                tokens,
                Some(hash_factor),
            ),
        })
    }
}

/// Words longer than this are encoded directly, not cached.
const WORD_CACHE_MAX_LEN: usize = 48;
/// A thread's cache is emptied when it grows past this many words (bounded memory).
const WORD_CACHE_ENTRIES: usize = 1 << 20;

type WordCache = rustc_hash::FxHashMap<Box<str>, Box<[u32]>>;

thread_local! {
    /// One cache per BPE tokenizer (indexed by the enum's discriminant).
    static WORD_CACHE: std::cell::RefCell<[WordCache; 3]> = std::cell::RefCell::default();
}

/// Cuts text before every ASCII space that is followed by a non-whitespace character.
///
/// No piece of the GPT-2, cl100k or o200k pre-tokenizer regex crosses such a cut: a space
/// followed by a non-space is always the first character of its piece (`' ?\p{L}+'`,
/// `'[^\r\n\p{L}\p{N}]?\p{L}+'`, or a lone `\s+`), because the whitespace-run pieces
/// before it stop short of it (`\s+(?!\S)` backs off one character) and the pieces that
/// absorb trailing characters take only `\r`, `\n` or `/`. At a word's end, the
/// look-arounds that differ from the whole text (`$` matches, `(?!\S)` sees the end) end the
/// same whitespace run there. So encoding word by word gives the ids of encoding the whole
/// text; a property test checks it against tiktoken's encoder on arbitrary text.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let mut start = 0;
    let mut i = 1;
    std::iter::from_fn(move || {
        while i + 1 < b.len() {
            let at = i;
            i += 1;
            if b[at] == b' ' && !whitespace_after(text, at + 1) {
                let word = &text[start..at];
                start = at;
                return Some(word);
            }
        }
        if start < b.len() {
            let word = &text[start..];
            start = b.len();
            return Some(word);
        }
        None
    })
}

fn whitespace_after(text: &str, at: usize) -> bool {
    let next = text.as_bytes()[at];
    if next.is_ascii() {
        // The ASCII members of Unicode White_Space (what regex's `\s` and `char::is_whitespace` use).
        return matches!(next, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    }
    text[at..].chars().next().is_some_and(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_matches_known_ids() {
        assert_eq!(Tokenizer::Gpt2.encode("hello world"), [31_373, 995]);
        // A literal special token is ordinary text.
        assert_ne!(Tokenizer::Gpt2.encode("<|endoftext|>"), [50_256]);
        assert_eq!(Tokenizer::Bytes.encode("hé"), [104, 195, 169]);
    }

    #[test]
    fn words_cut_before_spaces_that_start_a_word() {
        let w: Vec<&str> = words("Hello, big  world! \tx y\n z  ").collect();
        assert_eq!(w, ["Hello,", " big ", " world! \tx", " y\n", " z  "]);
        assert_eq!(words("").count(), 0);
        assert_eq!(words(" ").collect::<Vec<_>>(), [" "]);
        assert_eq!(words("a b").collect::<Vec<_>>(), ["a", " b"]);
        assert_eq!(words("é ü").collect::<Vec<_>>(), ["é", " ü"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Word-by-word encoding is tiktoken's encoding, for every BPE vocabulary.
        #[test]
        fn cached_encoding_is_tiktokens(text in "([a-zA-Z0-9'’.,;:!?/\\-_(){}\\[\\]      \t\n\n\r\u{a0}\u{2003}\u{3000}\u{85}éüß东京한🚀]|\\PC){0,80}") {
            for tok in [Tokenizer::Gpt2, Tokenizer::Cl100kBase, Tokenizer::O200kBase] {
                // Twice: the second pass is served from the cache.
                proptest::prop_assert_eq!(tok.encode(&text), tok.encode_uncached(&text));
                proptest::prop_assert_eq!(tok.encode(&text), tok.encode_uncached(&text));
            }
        }
    }

    const BPE: [Tokenizer; 3] = [Tokenizer::Gpt2, Tokenizer::Cl100kBase, Tokenizer::O200kBase];

    /// `n` characters drawn from `alphabet` by xorshift (reproducible, no dependency).
    fn random_text(alphabet: &[char], n: usize, mut x: u64) -> String {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[usize::try_from(x % alphabet.len() as u64).unwrap()]
            })
            .collect()
    }

    /// The ids are tiktoken's on runs that are one regex piece of megabytes, where tiktoken's
    /// merge is at its slowest and `encode_long` takes over.
    #[test]
    fn long_runs_encode_as_tiktoken() {
        let latin: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
        // CJK Unified Ideographs: all `\p{L}` (Lo), so a run is one piece for every pattern.
        let cjk: Vec<char> = ('\u{4E00}'..='\u{9FFF}').collect();
        let runs = [
            ("one letter", "a".repeat(MB)),
            (
                "random letters",
                random_text(&latin, MB, 0x9E37_79B9_7F4A_7C15),
            ),
            ("a word repeated", "encyclopedia".repeat(MB / 12)),
            (
                "random CJK",
                random_text(&cjk, MB / 3, 0x2545_F491_4F6C_DD1D),
            ),
        ];
        for tok in BPE {
            for (what, text) in &runs {
                let want = tok.encode_uncached(text);
                let got = tok.encode(text);
                assert!(
                    got == want,
                    "{} on {what}: {} ids, tiktoken {}; first difference at {:?}",
                    tok.name(),
                    got.len(),
                    want.len(),
                    got.iter().zip(&want).position(|(a, b)| a != b)
                );
            }
        }
    }

    /// Input size of [`long_runs_encode_as_tiktoken`]: tiktoken's own encoding of it is the
    /// slow part (seconds per megabyte, even optimised).
    const MB: usize = 1 << 20;

    #[test]
    fn every_ordinary_id_is_in_the_long_path_and_no_other() {
        for tok in BPE {
            let core = tok.core().unwrap();
            let long = LongPath::get(tok).expect("built");
            assert_eq!(long.bpe.num_tokens(), tok.ordinary_ids() as usize);
            // Past the ordinary ids, tiktoken has only special tokens or holes.
            let vocab = u32::try_from(tok.vocab_size()).unwrap();
            for id in tok.ordinary_ids()..vocab {
                if let Ok(bytes) = core.decode_bytes(&[id]) {
                    assert!(bytes.starts_with(b"<|"), "{}: {id}", tok.name());
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Long random letter strings, words of them and mixed text: the long path (every
        /// word, whatever its length) gives tiktoken's ids.
        #[test]
        fn long_path_is_tiktokens(
            text in "([a-zA-Z]{1,3000}|[a-z]{0,40}[ 0-9.,'’\n\t\u{a0}]|[éüß东京한🚀]{1,50}|\\PC){1,12}"
        ) {
            for tok in BPE {
                let mut got = Vec::new();
                for word in words(&text) {
                    tok.encode_long(word, &mut got);
                }
                proptest::prop_assert_eq!(got, tok.encode_uncached(&text));
            }
        }
    }
}
