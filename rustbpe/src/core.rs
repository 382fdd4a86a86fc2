//! The pure-Rust core: splitting text into pieces, counting them, learning merges, encoding.
//!
//! Nothing here touches Python, so `cargo test` exercises all of it.
//!
//! Training is the classic byte-level BPE loop with one rule for determinism: at each step we
//! merge the adjacent pair with the highest count, and among equal counts the smallest pair
//! `(left id, right id)`. Instead of recounting every pair after each merge we keep
//! * `pair_counts`: the exact current count of every pair,
//! * `where_`: for each pair, the unique pieces ("words") it may occur in,
//! * a max-heap of `(count, pair)` entries whose counts may be stale (too high).
//! Counts of an existing pair only ever go down (a merge only creates pairs that contain the new
//! token), so a stale entry overestimates: when one reaches the top we refresh its count and push
//! it back ("lazy refresh"); when the top entry is fresh it is the true argmax.

use ahash::AHashMap;
use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::split::Splitter;

/// Two adjacent token ids.
pub type Pair = (u32, u32);

/// A heap entry. The derived order compares `count` first (bigger wins in the max-heap), then
/// `Reverse(pair)` (the smaller pair wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    count: i64,
    pair: Reverse<Pair>,
}

/// Count the pieces of a batch of texts, in parallel: piece string -> number of occurrences.
pub fn count_pieces<S: AsRef<str> + Sync>(
    texts: &[S],
    splitter: &Splitter,
) -> Result<AHashMap<String, i64>, String> {
    texts
        .par_iter()
        .try_fold(AHashMap::<String, i64>::new, |mut acc, text| {
            splitter.for_each_piece(text.as_ref(), |piece| {
                if let Some(c) = acc.get_mut(piece) {
                    *c += 1;
                } else {
                    acc.insert(piece.to_owned(), 1);
                }
            })?;
            Ok(acc)
        })
        .try_reduce(AHashMap::new, |a, b| Ok(merge_counts(a, b)))
}

/// Add the counts of `b` into `a` (iterating over the smaller map).
pub fn merge_counts(mut a: AHashMap<String, i64>, mut b: AHashMap<String, i64>) -> AHashMap<String, i64> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (k, v) in b {
        *a.entry(k).or_insert(0) += v;
    }
    a
}

/// Initial pair counts and positions over all words (parallel over chunks of words).
fn initial_pairs(words: &[Vec<u32>], counts: &[i64]) -> (AHashMap<Pair, i64>, AHashMap<Pair, Vec<u32>>) {
    const CHUNK: usize = 1 << 14;
    let partials: Vec<(AHashMap<Pair, i64>, AHashMap<Pair, Vec<u32>>)> = words
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(ci, chunk)| {
            let mut pc: AHashMap<Pair, i64> = AHashMap::new();
            let mut pos: AHashMap<Pair, Vec<u32>> = AHashMap::new();
            for (j, w) in chunk.iter().enumerate() {
                let wi = (ci * CHUNK + j) as u32;
                let c = counts[wi as usize];
                if c == 0 {
                    continue;
                }
                for p in w.windows(2) {
                    let pair = (p[0], p[1]);
                    *pc.entry(pair).or_insert(0) += c;
                    let v = pos.entry(pair).or_default();
                    if v.last() != Some(&wi) {
                        v.push(wi);
                    }
                }
            }
            (pc, pos)
        })
        .collect();
    // Chunks are in order, so appending position lists keeps every list sorted.
    let mut it = partials.into_iter();
    let (mut pc, mut pos) = it.next().unwrap_or_default();
    for (pc2, pos2) in it {
        for (k, v) in pc2 {
            *pc.entry(k).or_insert(0) += v;
        }
        for (k, mut v) in pos2 {
            pos.entry(k).or_default().append(&mut v);
        }
    }
    (pc, pos)
}

/// Replace every non-overlapping occurrence (left to right) of `pair` in `ids` by `new_id`, and
/// apply the resulting pair-count changes, weighted by the word's count `c`, to `pc`. Pairs that
/// gain an occurrence are recorded with the word index `wi` in `fresh`.
#[inline]
fn merge_word(
    ids: &mut Vec<u32>,
    pair: Pair,
    new_id: u32,
    c: i64,
    wi: u32,
    pc: &mut AHashMap<Pair, i64>,
    fresh: &mut AHashMap<Pair, Vec<u32>>,
) {
    let (a, b) = pair;
    let n = ids.len();
    let (mut r, mut w) = (0usize, 0usize);
    let mut merged = 0i64;
    let mut gain = |p: Pair, pc: &mut AHashMap<Pair, i64>| {
        *pc.entry(p).or_insert(0) += c;
        let v = fresh.entry(p).or_default();
        if v.last() != Some(&wi) {
            v.push(wi);
        }
    };
    // In place: the write index never passes the read index, so ids[r..] is still the input.
    while r < n {
        if r + 1 < n && ids[r] == a && ids[r + 1] == b {
            if w > 0 {
                let left = ids[w - 1];
                *pc.entry((left, a)).or_insert(0) -= c;
                gain((left, new_id), pc);
            }
            if r + 2 < n {
                let right = ids[r + 2];
                *pc.entry((b, right)).or_insert(0) -= c;
                gain((new_id, right), pc);
            }
            merged += 1;
            ids[w] = new_id;
            w += 1;
            r += 2;
        } else {
            ids[w] = ids[r];
            w += 1;
            r += 1;
        }
    }
    ids.truncate(w);
    if merged > 0 {
        *pc.entry(pair).or_insert(0) -= merged * c;
    }
}

/// Learn up to `num_merges` merges from unique words (byte ids) and their counts.
/// Merge `i` creates token id `256 + i`. Stops early when no pair is left.
pub fn learn_merges(mut words: Vec<Vec<u32>>, counts: &[i64], num_merges: usize) -> Vec<Pair> {
    assert_eq!(words.len(), counts.len(), "one count per word");
    let mut merges: Vec<Pair> = Vec::with_capacity(num_merges);
    if num_merges == 0 {
        return merges;
    }
    let (mut pair_counts, mut where_) = initial_pairs(&words, counts);
    let mut heap: BinaryHeap<Entry> = pair_counts
        .iter()
        .filter(|(_, &c)| c > 0)
        .map(|(&pair, &count)| Entry { count, pair: Reverse(pair) })
        .collect();

    let mut fresh: AHashMap<Pair, Vec<u32>> = AHashMap::new();
    while merges.len() < num_merges {
        let Some(top) = heap.pop() else { break };
        let pair = top.pair.0;
        let current = pair_counts.get(&pair).copied().unwrap_or(0);
        if current <= 0 {
            continue; // this pair is gone for good
        }
        if current != top.count {
            heap.push(Entry { count: current, pair: top.pair }); // lazy refresh
            continue;
        }
        let new_id = 256 + merges.len() as u32;
        merges.push(pair);
        let positions = where_.remove(&pair).unwrap_or_default();
        for &wi in &positions {
            merge_word(&mut words[wi as usize], pair, new_id, counts[wi as usize], wi, &mut pair_counts, &mut fresh);
        }
        pair_counts.remove(&pair);
        for (p, pos) in fresh.drain() {
            let count = pair_counts.get(&p).copied().unwrap_or(0);
            if count > 0 {
                heap.push(Entry { count, pair: Reverse(p) });
                where_.insert(p, pos);
            }
        }
    }
    merges
}

/// Learn merges from a piece -> count map (the output of `count_pieces`).
pub fn learn_merges_from_counts(counts: AHashMap<String, i64>, num_merges: usize) -> Vec<Pair> {
    let mut words = Vec::with_capacity(counts.len());
    let mut cvec = Vec::with_capacity(counts.len());
    for (piece, c) in counts {
        if piece.len() >= 2 {
            words.push(piece.bytes().map(u32::from).collect());
            cvec.push(c);
        }
    }
    learn_merges(words, &cvec, num_merges)
}

/// The bytes of every token: ids 0..256 are single bytes, then one entry per merge.
pub fn token_bytes(merges: &[Pair]) -> Vec<Vec<u8>> {
    let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    for &(a, b) in merges {
        let mut t = vocab[a as usize].clone();
        t.extend_from_slice(&vocab[b as usize]);
        vocab.push(t);
    }
    vocab
}

/// What encoding needs: pair -> rank (the merged id) and whole-token bytes -> id.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    pub ranks: AHashMap<Pair, u32>,
    pub by_bytes: AHashMap<Vec<u8>, u32>,
}

impl Encoder {
    pub fn new(merges: &[Pair], vocab: &[Vec<u8>]) -> Self {
        let ranks = merges.iter().enumerate().map(|(i, &p)| (p, 256 + i as u32)).collect();
        let by_bytes = vocab.iter().enumerate().skip(256).map(|(i, t)| (t.clone(), i as u32)).collect();
        Encoder { ranks, by_bytes }
    }

    /// Encode one piece: repeatedly merge the adjacent pair that was learned first.
    #[inline]
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.len() == 1 {
            out.push(piece[0] as u32);
            return;
        }
        if let Some(&id) = self.by_bytes.get(piece) {
            out.push(id); // the whole piece is one token: the merges would end here anyway
            return;
        }
        let mut ids: Vec<u32> = piece.iter().map(|&b| b as u32).collect();
        while ids.len() >= 2 {
            let mut best: Option<(usize, u32)> = None;
            for i in 0..ids.len() - 1 {
                if let Some(&r) = self.ranks.get(&(ids[i], ids[i + 1])) {
                    if best.map_or(true, |(_, br)| r < br) {
                        best = Some((i, r));
                    }
                }
            }
            match best {
                Some((i, r)) => {
                    ids[i] = r;
                    ids.remove(i + 1);
                }
                None => break,
            }
        }
        out.extend_from_slice(&ids);
    }

    /// Encode a whole text: split into pieces, encode each.
    pub fn encode(&self, text: &str, splitter: &Splitter) -> Result<Vec<u32>, String> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        splitter.for_each_piece(text, |piece| self.encode_piece(piece.as_bytes(), &mut out))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(texts: &[(&str, i64)]) -> (Vec<Vec<u32>>, Vec<i64>) {
        let words = texts.iter().map(|(t, _)| t.bytes().map(u32::from).collect()).collect();
        let counts = texts.iter().map(|&(_, c)| c).collect();
        (words, counts)
    }

    /// The slow, obvious algorithm: recount every pair, take the max count, then the smallest pair.
    fn naive(mut words: Vec<Vec<u32>>, counts: &[i64], n: usize) -> Vec<Pair> {
        let mut merges = vec![];
        for k in 0..n {
            let mut pc: std::collections::BTreeMap<Pair, i64> = Default::default();
            for (w, &c) in words.iter().zip(counts) {
                for p in w.windows(2) {
                    *pc.entry((p[0], p[1])).or_default() += c;
                }
            }
            let Some((&best, _)) = pc.iter().filter(|(_, &c)| c > 0).max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0))) else {
                break;
            };
            let id = 256 + k as u32;
            for w in words.iter_mut() {
                let mut out = vec![];
                let mut i = 0;
                while i < w.len() {
                    if i + 1 < w.len() && (w[i], w[i + 1]) == best {
                        out.push(id);
                        i += 2;
                    } else {
                        out.push(w[i]);
                        i += 1;
                    }
                }
                *w = out;
            }
            merges.push(best);
        }
        merges
    }

    #[test]
    fn heap_order_is_count_then_smaller_pair() {
        let mut h = BinaryHeap::new();
        for (c, p) in [(3, (5, 6)), (7, (9, 9)), (7, (1, 200)), (7, (1, 2)), (2, (0, 0))] {
            h.push(Entry { count: c, pair: Reverse(p) });
        }
        let order: Vec<Pair> = std::iter::from_fn(|| h.pop().map(|e| e.pair.0)).collect();
        assert_eq!(order, vec![(1, 2), (1, 200), (9, 9), (5, 6), (0, 0)]);
    }

    #[test]
    fn merge_word_overlapping_runs() {
        // "aaaaa" with (a,a) -> X gives X X a; the count deltas must match a recount.
        let mut ids: Vec<u32> = vec![97; 5];
        let mut pc: AHashMap<Pair, i64> = AHashMap::new();
        pc.insert((97, 97), 4 * 3);
        let mut fresh = AHashMap::new();
        merge_word(&mut ids, (97, 97), 256, 3, 0, &mut pc, &mut fresh);
        assert_eq!(ids, vec![256, 256, 97]);
        assert_eq!(pc[&(97, 97)], 0);
        assert_eq!(pc[&(256, 256)], 3);
        assert_eq!(pc[&(256, 97)], 3);
        assert!(fresh.contains_key(&(256, 256)) && fresh.contains_key(&(256, 97)));
    }

    #[test]
    fn merge_word_with_neighbours() {
        let mut ids: Vec<u32> = "xabyab".bytes().map(u32::from).collect();
        let (a, b, x, y) = (97u32, 98u32, 120u32, 121u32);
        let mut pc: AHashMap<Pair, i64> = AHashMap::new();
        for p in ids.windows(2) {
            *pc.entry((p[0], p[1])).or_default() += 2;
        }
        let mut fresh = AHashMap::new();
        merge_word(&mut ids, (a, b), 300, 2, 7, &mut pc, &mut fresh);
        assert_eq!(ids, vec![x, 300, y, 300]);
        let mut recount: AHashMap<Pair, i64> = AHashMap::new();
        for p in ids.windows(2) {
            *recount.entry((p[0], p[1])).or_default() += 2;
        }
        for (p, c) in &pc {
            assert_eq!(*c, recount.get(p).copied().unwrap_or(0), "pair {p:?}");
        }
        assert_eq!(fresh[&(x, 300)], vec![7]);
    }

    #[test]
    fn tie_break_takes_smaller_pair() {
        // "ab" and "cd" both occur 5 times: (a,b) < (c,d) so it is merged first.
        let (w, c) = words_of(&[("cd", 5), ("ab", 5)]);
        assert_eq!(learn_merges(w, &c, 2), vec![(97, 98), (99, 100)]);
    }

    #[test]
    fn stops_when_no_pairs_left() {
        let (w, c) = words_of(&[("ab", 1)]);
        assert_eq!(learn_merges(w, &c, 10), vec![(97, 98)]);
    }

    #[test]
    fn heap_loop_matches_naive_recount() {
        // A deterministic pseudo-random corpus over a small alphabet, so merges chain and tie.
        let mut s: u64 = 12345;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for trial in 0..20 {
            let mut words = vec![];
            let mut counts = vec![];
            for _ in 0..(20 + trial * 5) {
                let len = 1 + (rnd() % 9) as usize;
                words.push((0..len).map(|_| 97 + (rnd() % (2 + trial as u64 % 4)) as u32).collect::<Vec<u32>>());
                counts.push(1 + (rnd() % 4) as i64);
            }
            let fast = learn_merges(words.clone(), &counts, 40);
            let slow = naive(words, &counts, 40);
            assert_eq!(fast, slow, "trial {trial}");
        }
    }

    #[test]
    fn encode_uses_learned_merges() {
        let splitter = Splitter::new(crate::split::GPT4_PATTERN).unwrap();
        let texts = vec!["hello hello hello world".to_string(); 3];
        let counts = count_pieces(&texts, &splitter).unwrap();
        assert_eq!(counts["hello"], 3);
        assert_eq!(counts[" hello"], 6);
        let merges = learn_merges_from_counts(counts, 20);
        let vocab = token_bytes(&merges);
        let enc = Encoder::new(&merges, &vocab);
        let ids = enc.encode("hello world", &splitter).unwrap();
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| vocab[i as usize].clone()).collect();
        assert_eq!(bytes, b"hello world");
        assert!(ids.len() <= 3, "{ids:?}");
    }
}
