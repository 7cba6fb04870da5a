//! Errors of the value codecs.

/// Why a value, a field name, an encoded key or a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid field name {name:?}: {reason}")]
    InvalidFieldName { name: String, reason: &'static str },
    #[error("invalid {tag} value: {reason}")]
    InvalidSpecialValue { tag: &'static str, reason: String },
    #[error("value is nested more than {max} levels deep")]
    TooDeep { max: usize },
    #[error("corrupt encoded key: {0}")]
    CorruptKey(&'static str),
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
}

pub type Result<T, E = ValueError> = std::result::Result<T, E>;
