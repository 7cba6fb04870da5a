//! Function paths and call arguments, as the Convex clients send them (over
//! HTTP and the sync protocol alike), canonicalised.

/// `"messages:send"` stays; `"messages"` is `"messages:default"`;
/// `"messages.js:send"` is `"messages:send"`. The split is at the last `:`.
pub fn canonicalize(path: &str) -> String {
    let (module, function) = match path.rsplit_once(':') {
        Some((module, function)) => (module, function),
        None => (path, "default"),
    };
    let module = module.strip_suffix(".js").unwrap_or(module);
    format!("{module}:{function}")
}

/// Arguments may be an object or, as the Convex client sends them, a
/// one-element array holding the object; the result is Convex JSON text.
pub fn call_arguments(args: Option<serde_json::Value>) -> Result<String, String> {
    let args = match args {
        None => serde_json::Value::Object(Default::default()),
        Some(serde_json::Value::Array(mut items)) if items.len() == 1 => items.remove(0),
        Some(serde_json::Value::Array(items)) => {
            return Err(format!(
                "args must be an object or a one-element array, not an array of {}",
                items.len()
            ));
        }
        Some(other) => other,
    };
    let value =
        capstan_protocol::Value::from_json(&args).map_err(|e| format!("invalid args: {e}"))?;
    if !matches!(value, capstan_protocol::Value::Object(_)) {
        return Err(format!(
            "args must be an object, not {}",
            value.value_type().name()
        ));
    }
    Ok(value.to_json_string())
}

#[cfg(test)]
mod tests {
    use super::canonicalize;

    #[test]
    fn paths_are_canonicalised_like_convex() {
        assert_eq!(canonicalize("messages:send"), "messages:send");
        assert_eq!(canonicalize("messages.js:send"), "messages:send");
        assert_eq!(canonicalize("dir/messages"), "dir/messages:default");
        assert_eq!(canonicalize("a:b:c"), "a:b:c");
    }
}
