//! Schema-checked emits: the catalogs' event contracts, enforced on the way
//! out.
//!
//! A plugin may name a folder of JSON Schemas (`schemas = "schemas"` in its
//! `[[plugin]]` table), one file per emitted type, named after the type:
//! `schemas/payment.escrow_released.json` checks the `data` of every
//! `payment.escrow_released` the plugin emits. Any draft the `jsonschema`
//! crate knows is accepted (`$schema` picks it; draft 2020-12 otherwise).
//!
//! - An emit whose data fails its schema fails the whole call with class
//!   `schema`: nothing it emitted is produced, its state writes are dropped,
//!   and the event is dead-lettered with the validation errors in
//!   `switchyard-dlq-error` (the log and `switchyard test`'s output say the
//!   same).
//! - A type with no file in the folder is not checked. The router's startup
//!   log names the emitted types that have none.
//! - The folder is read once, when the config is loaded; a file that is not
//!   JSON or not a valid schema stops the load with a line naming it.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// At most this many validation errors are reported per emit.
const MAX_ERRORS: usize = 5;

/// Each validation error's message is cut to this many bytes.
const MAX_MESSAGE: usize = 200;

/// The compiled schemas of one plugin, by emitted type.
pub struct Schemas {
    dir: PathBuf,
    by_type: BTreeMap<String, jsonschema::Validator>,
}

impl fmt::Debug for Schemas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schemas")
            .field("dir", &self.dir)
            .field("types", &self.by_type.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Schemas {
    /// Reads and compiles every `<type>.json` in `dir`.
    pub(crate) fn load(dir: &Path) -> Result<Self, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!(
                "cannot read the schema folder {} ({e}); create it or fix `schemas`",
                dir.display()
            )
        })?;
        let mut by_type = BTreeMap::new();
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            let Some(ty) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: cannot read it ({e})", path.display()))?;
            let schema: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not JSON ({e}); fix the schema file", path.display()))?;
            let validator = jsonschema::validator_for(&schema).map_err(|e| {
                format!(
                    "{}: not a valid JSON Schema ({e}); fix the schema file",
                    path.display()
                )
            })?;
            by_type.insert(ty.to_string(), validator);
        }
        Ok(Schemas {
            dir: dir.to_path_buf(),
            by_type,
        })
    }

    /// The types that have a schema.
    pub(crate) fn types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// Checks the data of an emit of type `ty`; `Err` lists why it does not
    /// fit, one line per error (at most five), each with its JSON pointer.
    pub(crate) fn check(&self, ty: &str, data: &Value) -> Result<(), String> {
        let Some(validator) = self.by_type.get(ty) else {
            return Ok(());
        };
        let errors: Vec<String> = validator
            .iter_errors(data)
            .take(MAX_ERRORS + 1)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() {
                    "(root)".to_string()
                } else {
                    at
                };
                // Some messages quote the whole value; keep each one short.
                let mut message = e.to_string();
                if message.len() > MAX_MESSAGE {
                    let cut = (0..=MAX_MESSAGE)
                        .rev()
                        .find(|&i| message.is_char_boundary(i));
                    message.truncate(cut.unwrap_or(0));
                    message.push('…');
                }
                format!("{at}: {message}")
            })
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        let more = if errors.len() > MAX_ERRORS {
            " (and more)"
        } else {
            ""
        };
        let file = self.dir.join(format!("{ty}.json"));
        Err(format!(
            "`{ty}` does not match {}: {}{more}",
            file.display(),
            errors[..errors.len().min(MAX_ERRORS)].join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_the_types_it_has_and_names_the_missing_field() {
        let dir = tempfile::tempdir().unwrap();
        let schema = json!({
            "type": "object",
            "required": ["payment_id", "owner_id"],
            "properties": { "owner_id": { "type": "string" } }
        });
        std::fs::write(dir.path().join("payment.failed.json"), schema.to_string()).unwrap();
        let schemas = Schemas::load(dir.path()).unwrap();
        assert_eq!(schemas.types().collect::<Vec<_>>(), ["payment.failed"]);
        assert!(
            schemas
                .check(
                    "payment.failed",
                    &json!({"payment_id": "p", "owner_id": "o"})
                )
                .is_ok()
        );
        let err = schemas
            .check("payment.failed", &json!({"payment_id": "p"}))
            .unwrap_err();
        assert!(err.contains("\"owner_id\" is a required property"), "{err}");
        assert!(err.contains("payment.failed.json"), "{err}");
        let err = schemas
            .check("payment.failed", &json!({"payment_id": "p", "owner_id": 7}))
            .unwrap_err();
        assert!(err.contains("/owner_id"), "{err}");
        assert!(schemas.check("other.type", &json!(1)).is_ok());
    }

    #[test]
    fn a_broken_schema_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.b.json"), "{ nope").unwrap();
        let err = Schemas::load(dir.path()).unwrap_err();
        assert!(err.contains("a.b.json: not JSON"), "{err}");
        std::fs::write(dir.path().join("a.b.json"), r#"{"type": 12}"#).unwrap();
        let err = Schemas::load(dir.path()).unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
    }
}
