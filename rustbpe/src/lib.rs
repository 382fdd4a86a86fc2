//! rustbpe (nanochat course edition): a byte-level BPE trainer and encoder with Python bindings.
//!
//! The Python API follows rustbpe 0.1.0 (`Tokenizer()`, `train_from_iterator`, `get_pattern`,
//! `get_mergeable_ranks`, `encode`, `decode`, `batch_encode`) and learns the same merges from the
//! same text, pattern and vocabulary size. The algorithm lives in `core` (pure Rust).

pub mod core;
pub mod split;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use rayon::prelude::*;

use crate::core::{count_pieces, learn_merges_from_counts, merge_counts, token_bytes, Encoder, Pair};
use crate::split::{Splitter, GPT4_PATTERN, SPLIT_PATTERN};

/// A byte-level BPE tokenizer: train it on an iterator of str, then encode / decode.
#[pyclass(module = "rustbpe")]
pub struct Tokenizer {
    merges: Vec<Pair>,
    vocab: Vec<Vec<u8>>,
    encoder: Encoder,
    splitter: Splitter,
}

impl Tokenizer {
    fn install(&mut self, splitter: Splitter, merges: Vec<Pair>) {
        self.vocab = token_bytes(&merges);
        self.encoder = Encoder::new(&merges, &self.vocab);
        self.merges = merges;
        self.splitter = splitter;
    }
}

#[pymethods]
impl Tokenizer {
    /// An untrained tokenizer: GPT-4 split pattern, 256 byte tokens, no merges.
    #[new]
    fn new() -> Self {
        let splitter = Splitter::new(GPT4_PATTERN).expect("the built-in pattern compiles");
        let vocab = token_bytes(&[]);
        Tokenizer { merges: vec![], encoder: Encoder::new(&[], &vocab), vocab, splitter }
    }

    /// Learn `vocab_size - 256` merges from the texts an iterator yields (str only).
    ///
    /// Texts are pulled `buffer_size` at a time under the GIL, then split and counted in
    /// parallel with the GIL released. `pattern=None` means GPT-4's split pattern.
    #[pyo3(signature = (iterator, vocab_size, buffer_size=8192, pattern=None))]
    fn train_from_iterator(
        &mut self,
        py: Python<'_>,
        iterator: &Bound<'_, PyAny>,
        vocab_size: i64,
        buffer_size: i64,
        pattern: Option<String>,
    ) -> PyResult<()> {
        if vocab_size < 256 {
            return Err(PyValueError::new_err(format!(
                "vocab_size must be at least 256 (the byte tokens), got {vocab_size}"
            )));
        }
        if vocab_size > u32::MAX as i64 / 2 {
            return Err(PyValueError::new_err(format!("vocab_size {vocab_size} is too large")));
        }
        if buffer_size < 1 {
            return Err(PyValueError::new_err(format!("buffer_size must be at least 1, got {buffer_size}")));
        }
        let pattern = pattern.unwrap_or_else(|| GPT4_PATTERN.to_owned());
        let splitter = Splitter::new(&pattern).map_err(PyValueError::new_err)?;
        let iter = iterator.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "train_from_iterator needs an iterable of str, got {}",
                type_name(iterator)
            ))
        })?;

        let buffer_size = buffer_size as usize;
        let mut counts = ahash::AHashMap::<String, i64>::new();
        let mut buf: Vec<String> = Vec::with_capacity(buffer_size.min(1 << 16));
        let mut iter = iter.into_iter();
        loop {
            buf.clear();
            let mut exhausted = false;
            while buf.len() < buffer_size {
                match iter.next() {
                    None => {
                        exhausted = true;
                        break;
                    }
                    Some(item) => {
                        let item = item?;
                        let s = item.cast::<PyString>().map_err(|_| {
                            PyTypeError::new_err(format!(
                                "train_from_iterator: the iterator must yield str, got {}",
                                type_name(&item)
                            ))
                        })?;
                        buf.push(s.to_str()?.to_owned());
                    }
                }
            }
            if !buf.is_empty() {
                let local = py.detach(|| count_pieces(&buf, &splitter)).map_err(PyRuntimeError::new_err)?;
                counts = merge_counts(counts, local);
            }
            if exhausted {
                break;
            }
        }
        let num_merges = (vocab_size - 256) as usize;
        let merges = py.detach(|| learn_merges_from_counts(counts, num_merges));
        self.install(splitter, merges);
        Ok(())
    }

    /// The split pattern in use.
    fn get_pattern(&self) -> String {
        self.splitter.pattern().to_owned()
    }

    /// Number of tokens: 256 bytes plus one per merge.
    #[getter]
    fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Every token's bytes with its rank (= id), in id order: what tiktoken's Encoding takes.
    fn get_mergeable_ranks<'py>(&self, py: Python<'py>) -> Vec<(Bound<'py, PyBytes>, u32)> {
        self.vocab.iter().enumerate().map(|(i, t)| (PyBytes::new(py, t), i as u32)).collect()
    }

    /// The merges in the order they were learned: merge i made token 256 + i from (left, right).
    fn get_merges(&self) -> Vec<Pair> {
        self.merges.clone()
    }

    /// Encode one str into token ids.
    fn encode(&self, py: Python<'_>, text: &str) -> PyResult<Vec<u32>> {
        if text.len() > 1 << 16 {
            py.detach(|| self.encoder.encode(text, &self.splitter)).map_err(PyRuntimeError::new_err)
        } else {
            self.encoder.encode(text, &self.splitter).map_err(PyRuntimeError::new_err)
        }
    }

    /// Encode many strs in parallel (GIL released); one list of ids per text.
    fn batch_encode(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<u32>>> {
        py.detach(|| {
            texts
                .par_iter()
                .map(|t| self.encoder.encode(t, &self.splitter))
                .collect::<Result<Vec<_>, String>>()
        })
        .map_err(PyRuntimeError::new_err)
    }

    /// The bytes of a sequence of token ids.
    fn decode_bytes<'py>(&self, py: Python<'py>, ids: Vec<u32>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.concat(&ids)?))
    }

    /// Decode token ids to str (invalid UTF-8, possible only for ids cut mid-character, is an error).
    fn decode(&self, ids: Vec<u32>) -> PyResult<String> {
        let bytes = self.concat(&ids)?;
        String::from_utf8(bytes).map_err(|e| {
            PyValueError::new_err(format!("decoded bytes are not valid UTF-8 ({e}); use decode_bytes"))
        })
    }

    fn __repr__(&self) -> String {
        format!("rustbpe.Tokenizer(vocab_size={})", self.vocab.len())
    }
}

impl Tokenizer {
    fn concat(&self, ids: &[u32]) -> PyResult<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let t = self
                .vocab
                .get(id as usize)
                .ok_or_else(|| PyValueError::new_err(format!("unknown token id {id} (vocab_size {})", self.vocab.len())))?;
            out.extend_from_slice(t);
        }
        Ok(out)
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Byte-level BPE training and encoding in Rust (nanochat course edition of rustbpe).
#[pymodule]
fn rustbpe(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tokenizer>()?;
    m.add("GPT4_PATTERN", GPT4_PATTERN)?;
    m.add("SPLIT_PATTERN", SPLIT_PATTERN)?;
    m.add("__version__", "0.2.0+nanochat")?;
    Ok(())
}
