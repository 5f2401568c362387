//! [`DType`]: the element types of token files, with their numpy names and Megatron codes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An element type of a token file. Integers are tokens; Megatron also allows floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    #[serde(rename = "uint8")]
    U8,
    #[serde(rename = "int8")]
    I8,
    #[serde(rename = "uint16")]
    U16,
    #[serde(rename = "int16")]
    I16,
    #[serde(rename = "uint32")]
    U32,
    #[serde(rename = "int32")]
    I32,
    #[serde(rename = "int64")]
    I64,
    #[serde(rename = "uint64")]
    U64,
    #[serde(rename = "float32")]
    F32,
    #[serde(rename = "float64")]
    F64,
}

/// Megatron's `DType` codes (`megatron/core/datasets/indexed_dataset.py`).
const MEGATRON_CODES: [(u8, DType); 8] = [
    (1, DType::U8),
    (2, DType::I8),
    (3, DType::I16),
    (4, DType::I32),
    (5, DType::I64),
    (6, DType::F64),
    (7, DType::F32),
    (8, DType::U16),
];

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    /// numpy's name: `uint16`.
    pub fn numpy_name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::I8 => "int8",
            Self::U16 => "uint16",
            Self::I16 => "int16",
            Self::U32 => "uint32",
            Self::I32 => "int32",
            Self::U64 => "uint64",
            Self::I64 => "int64",
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    /// Parses a numpy name (`uint16`) or a short one (`u2`, `i4`).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::U8,
            Self::I8,
            Self::U16,
            Self::I16,
            Self::U32,
            Self::I32,
            Self::U64,
            Self::I64,
            Self::F32,
            Self::F64,
        ]
        .into_iter()
        .find(|d| d.numpy_name() == name || d.numpy_char() == name)
    }

    /// numpy's kind and size: `u2`.
    fn numpy_char(self) -> &'static str {
        match self {
            Self::U8 => "u1",
            Self::I8 => "i1",
            Self::U16 => "u2",
            Self::I16 => "i2",
            Self::U32 => "u4",
            Self::I32 => "i4",
            Self::U64 => "u8",
            Self::I64 => "i8",
            Self::F32 => "f4",
            Self::F64 => "f8",
        }
    }

    /// Megatron's dtype code, if this type has one.
    pub fn megatron_code(self) -> Option<u8> {
        MEGATRON_CODES
            .iter()
            .find(|(_, d)| *d == self)
            .map(|(c, _)| *c)
    }

    pub fn from_megatron_code(code: u8) -> Option<Self> {
        MEGATRON_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| *d)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }

    /// The type Megatron's `DType.optimal_dtype` picks for a vocabulary: `uint16` below
    /// 65500 entries, else `int32`.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size < 65_500 {
            Self::U16
        } else {
            Self::I32
        }
    }

    /// The largest value of this type, as an integer (floats: the largest they hold exactly).
    pub fn max_value(self) -> u64 {
        match self {
            Self::U64 => u64::MAX,
            other => other.max_token(),
        }
    }

    /// The largest token id this type holds.
    pub fn max_token(self) -> u64 {
        match self {
            Self::U8 => u8::MAX.into(),
            Self::I8 => 127,
            Self::U16 => u16::MAX.into(),
            Self::I16 => 32_767,
            Self::U32 => u32::MAX.into(),
            Self::I32 => i32::MAX.unsigned_abs().into(),
            Self::U64 | Self::I64 => i64::MAX.unsigned_abs(),
            // Floats hold integers exactly up to 2^24 and 2^53.
            Self::F32 => 1 << 24,
            Self::F64 => 1 << 53,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.numpy_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megatron_codes_match_the_reference_table() {
        let names: Vec<&str> = (1..=8)
            .map(|c| DType::from_megatron_code(c).unwrap().numpy_name())
            .collect();
        assert_eq!(
            names,
            ["uint8", "int8", "int16", "int32", "int64", "float64", "float32", "uint16"]
        );
        assert_eq!(DType::from_megatron_code(0), None);
        assert_eq!(DType::from_megatron_code(9), None);
        assert_eq!(DType::U32.megatron_code(), None);
    }

    #[test]
    fn names_and_vocab_choice() {
        assert_eq!(DType::from_name("uint16"), Some(DType::U16));
        assert_eq!(DType::from_name("i4"), Some(DType::I32));
        assert_eq!(DType::from_name("u16"), None);
        assert_eq!(DType::for_vocab(50_257), DType::U16);
        assert_eq!(DType::for_vocab(100_277), DType::I32);
    }
}
