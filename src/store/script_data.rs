//! Lua scripts' values in the store: strings, numbers, booleans or tables of them,
//! kept as JSON text under the [`keys::DATA`] namespace.
//!
//! Integers are stored as bare digits, so a value written by `set` can be `incr`-ed and
//! a counter made by `incr` reads back as a number.

use std::time::Duration;

use serde_json::Value;

use super::keys::{self, data_key};
use super::{Store, StoreError};

/// Encodes a script value for storage.
pub fn encode(value: &Value) -> String {
    value.to_string()
}

/// Decodes a stored script value; text that is not JSON (written by something other
/// than [`encode`]) reads back as a string rather than failing the script.
pub fn decode(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Reads the script value `name`; `None` when absent or expired.
pub async fn get(store: &dyn Store, name: &str) -> Result<Option<Value>, StoreError> {
    Ok(store.get(&data_key(name)).await?.as_deref().map(decode))
}

/// Writes the script value `name`; `Value::Null` (Lua `nil`) deletes it.
pub async fn set(
    store: &dyn Store,
    name: &str,
    value: &Value,
    ttl: Option<Duration>,
) -> Result<(), StoreError> {
    if value.is_null() {
        store.del(&data_key(name)).await?;
        return Ok(());
    }
    store.set(&data_key(name), &encode(value), ttl).await
}

/// Adds `by` to the integer script value `name` (absent counts as 0).
pub async fn incr(store: &dyn Store, name: &str, by: i64) -> Result<i64, StoreError> {
    store.incr(&data_key(name), by).await
}

/// Deletes the script value `name`; true when it existed.
pub async fn del(store: &dyn Store, name: &str) -> Result<bool, StoreError> {
    store.del(&data_key(name)).await
}

/// The namespace prefix script data lives under, for tools listing it.
pub fn namespace() -> &'static str {
    keys::DATA
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use serde_json::json;

    #[test]
    fn round_trips_script_values() {
        for v in [
            json!("hello 你好"),
            json!(42),
            json!(-1.5),
            json!(true),
            json!({"a": [1, 2, {"b": false}], "c": "d"}),
        ] {
            assert_eq!(decode(&encode(&v)), v);
        }
    }

    #[test]
    fn integers_are_bare_digits_and_non_json_reads_as_string() {
        assert_eq!(encode(&json!(7)), "7");
        assert_eq!(decode("not json"), json!("not json"));
    }

    #[tokio::test]
    async fn set_incr_get_share_one_representation() {
        let store = SqliteStore::open_in_memory().unwrap();
        set(&store, "n", &json!(5), None).await.unwrap();
        assert_eq!(incr(&store, "n", 2).await.unwrap(), 7);
        assert_eq!(get(&store, "n").await.unwrap(), Some(json!(7)));
        assert_eq!(store.get("data:n").await.unwrap().as_deref(), Some("7"));
        set(&store, "s", &json!("x"), None).await.unwrap();
        assert!(matches!(
            incr(&store, "s", 1).await,
            Err(StoreError::NotAnInteger { .. })
        ));
        set(&store, "s", &Value::Null, None).await.unwrap();
        assert_eq!(get(&store, "s").await.unwrap(), None);
        assert!(del(&store, "n").await.unwrap());
        assert!(!del(&store, "n").await.unwrap());
        assert_eq!(namespace(), "data:");
    }
}
