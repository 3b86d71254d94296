//! The `env` and `env_<profile>` sections: objects of variables, stringified like PM2 does.

use serde_json::Value;
use std::collections::BTreeMap;

/// The variables of an `env`-like object. Scalars become their text, nested objects and lists
/// their JSON (PM2 JSON-stringifies them so apps can parse them back).
pub fn variables(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(object) = value else {
        return Err(format!(
            "expected an object of environment variables, got {}",
            crate::convert::describe(value)
        ));
    };
    let mut out = BTreeMap::new();
    for (name, value) in object {
        // The OS cannot represent these names; failing here beats a spawn error later.
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        let text = match value {
            Value::String(s) => s.clone(),
            // `String(null)` in JavaScript, which is what PM2 ends up passing.
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            nested => nested.to_string(),
        };
        if text.contains('\0') {
            return Err(format!("environment variable {name:?} contains a NUL byte"));
        }
        out.insert(name.clone(), text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_stringified_like_pm2() {
        let env = variables(&json!({
            "S": "x", "N": 3, "F": 1.5, "B": true, "Z": null, "O": {"a": [1, 2]}
        }))
        .expect("env");
        assert_eq!(env["S"], "x");
        assert_eq!(env["N"], "3");
        assert_eq!(env["F"], "1.5");
        assert_eq!(env["B"], "true");
        assert_eq!(env["Z"], "null");
        assert_eq!(env["O"], r#"{"a":[1,2]}"#);
    }

    #[test]
    fn rejects_non_objects_and_bad_names() {
        assert!(variables(&json!(["A=1"]))
            .expect_err("should fail")
            .contains("expected an object"));
        assert!(variables(&json!({"A=B": "1"}))
            .expect_err("should fail")
            .contains("invalid"));
    }
}
