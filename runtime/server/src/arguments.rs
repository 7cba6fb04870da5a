//! Call arguments, as the Convex clients send them (over HTTP and the sync
//! protocol alike), checked and normalised.

use capstan_protocol::ErrorCode;

use crate::error::Error;

/// Arguments may be an object or, as the Convex client sends them, a
/// one-element array holding the object; the result is Convex JSON text.
pub fn call_arguments(args: Option<serde_json::Value>) -> Result<String, Error> {
    let refuse = |message: String| Error::new(ErrorCode::BadRequest, message);
    let args = match args {
        None => serde_json::Value::Object(Default::default()),
        Some(serde_json::Value::Array(mut items)) if items.len() == 1 => items.remove(0),
        Some(serde_json::Value::Array(items)) => {
            return Err(refuse(format!(
                "args must be an object or a one-element array, not an array of {}",
                items.len()
            )));
        }
        Some(other) => other,
    };
    let value = capstan_protocol::Value::from_json(&args)
        .map_err(|e| refuse(format!("invalid args: {e}")))?;
    if !matches!(value, capstan_protocol::Value::Object(_)) {
        return Err(refuse(format!(
            "args must be an object, not {}",
            value.value_type().name()
        )));
    }
    Ok(value.to_json_string())
}
