//! Which properties hold secrets, and how configuration shows them (`Debug`): values of
//! secret-looking keys are never printed.

use std::collections::BTreeMap;

/// True for property names whose values must never reach a log line or an error: passwords
/// (misspelt ones too: `pass`), secrets, tokens, keys and PEM material, JAAS and OAUTHBEARER
/// configurations, credentials.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "key",
        "pem",
        "jaas",
        "oauthbearer",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Properties as `Debug` shows them: values of secret-looking keys replaced.
pub(crate) fn redacted(properties: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    properties
        .iter()
        .map(|(k, v)| {
            let shown = if is_secret_property(k) {
                "<redacted>"
            } else {
                v.as_str()
            };
            (k.as_str(), shown)
        })
        .collect()
}
