//! Reading and writing the auth tables inside a transaction: small typed
//! helpers over documents, so the flows read as what they do.

use capstan_protocol::{Object, Value};
use capstan_store::{Document, DocumentId, Patch, Query, Transaction};

use super::AuthError;

pub type Tx = Transaction;

/// A document's string field.
pub fn text<'d>(document: &'d Document, field: &str) -> Option<&'d str> {
    document.fields.get(field).and_then(Value::as_str)
}

/// A document's number field.
pub fn number(document: &Document, field: &str) -> Option<f64> {
    match document.fields.get(field) {
        Some(Value::Float64(n)) => Some(*n),
        Some(Value::Int64(n)) => Some(*n as f64),
        _ => None,
    }
}

/// A document's id field (stored as the id's text).
pub fn id_field(tx: &Tx, document: &Document, field: &str) -> Option<DocumentId> {
    text(document, field).and_then(|id| tx.parse_id(id).ok())
}

/// An object from `(field, value)` pairs, leaving out `None`s.
pub fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Object {
    fields
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
        .collect()
}

pub fn patch<const N: usize>(fields: [(&str, Option<Value>); N]) -> Patch {
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// The documents of `table` whose index `index` has exactly `values`.
pub fn find(
    tx: &mut Tx,
    table: &str,
    index: &str,
    values: &[(&str, Value)],
    limit: Option<usize>,
) -> Result<Vec<Document>, AuthError> {
    let mut query = Query::index(table, index);
    for (field, value) in values {
        query = query.eq(field, value.clone());
    }
    Ok(tx.query(&query, limit)?)
}

/// The first such document.
pub fn find_one(
    tx: &mut Tx,
    table: &str,
    index: &str,
    values: &[(&str, Value)],
) -> Result<Option<Document>, AuthError> {
    Ok(find(tx, table, index, values, Some(1))?.into_iter().next())
}

/// A document by the text of its id, if it is one of `table`'s and exists.
pub fn get(tx: &mut Tx, table: &str, id: &str) -> Result<Option<Document>, AuthError> {
    let Ok(id) = tx.parse_id(id) else {
        return Ok(None);
    };
    let Ok(entry) = tx.catalog().table(table) else {
        return Ok(None);
    };
    if id.table() != entry.number {
        return Ok(None);
    }
    Ok(tx.get(id)?)
}

pub fn string(text: impl Into<String>) -> Option<Value> {
    Some(Value::String(text.into()))
}

pub fn float(n: f64) -> Option<Value> {
    Some(Value::Float64(n))
}

/// SHA-256 of a secret, in hex: what is stored instead of codes and tokens.
pub fn digest(secret: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `n` random characters from `alphabet`, from the operating system's
/// generator.
pub fn random_text(alphabet: &[u8], n: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

pub const DIGITS: &[u8] = b"0123456789";
pub const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A 256-bit secret in base64url.
pub fn secret() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
