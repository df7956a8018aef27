//! `switchyard new`: a plugin that works at once, in Rust, Python or
//! JavaScript.
//!
//! The folder it writes holds a handler of under 30 lines that answers
//! `greeting.requested` with `greeting.sent`, one fixture, a JSON Schema for
//! the emit, a `router.toml` that runs it (with `sources = "."`, so
//! `switchyard test` builds it when stale and `switchyard dev` rebuilds it
//! on every save) and a short README with the build command.
//!
//! - Rust: a crate depending on the SDK of the checkout this binary was
//!   built from (`--sdk` points elsewhere), a workspace of its own, built as
//!   the reference plugins are (LTO, one codegen unit, and LLVM inlining more
//!   than by default, in `.cargo/config.toml`: BENCHMARKS.md, P2).
//! - Python and JavaScript: the handler next to a copy of the SDK helper
//!   (`switchyard.py`, `switchyard.js`) and of `wit/`, so that the folder
//!   builds on its own with componentize-py or componentize-js; JavaScript
//!   also gets `componentize.mjs`, which runs componentize-js with a faster
//!   string copy in its bindings (BENCHMARKS.md, P8).

pub use crate::config::Lang;
use std::path::{Path, PathBuf};

const WIT: &str = include_str!("../../wit/switchyard.wit");
const ROUTER: &str = include_str!("../templates/common/router.toml");
const FIXTURE: &str = include_str!("../templates/common/fixture.json");
const SCHEMA: &str = include_str!("../templates/common/schema.json");
const README: &str = include_str!("../templates/common/README.md");

/// What `new` needs beyond the name.
#[derive(Debug, Clone)]
pub(crate) struct NewPlugin {
    /// The plugin's name: lowercase letters, digits, `-` and `_`, starting
    /// with a letter.
    pub(crate) name: String,
    /// Its language.
    pub(crate) lang: Lang,
    /// The folder to create (default: `./<name>`); it must not exist or be
    /// empty.
    pub(crate) dir: Option<PathBuf>,
    /// The Rust SDK crate (default: this checkout's `plugins/sdk`).
    pub(crate) sdk: Option<PathBuf>,
}

/// Writes the plugin's folder; returns it.
pub(crate) fn create(new: &NewPlugin) -> anyhow::Result<PathBuf> {
    let name = &new.name;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        anyhow::bail!(
            "`{name}` is not a plugin name; use lowercase letters, digits, `-` and `_`, starting with a letter"
        );
    }
    let dir = new.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        anyhow::bail!(
            "{}: the folder exists and is not empty; pick another name or `--dir`",
            dir.display()
        );
    }
    let shown = dir.display().to_string();
    let (language, handler, wasm, setup) = match new.lang {
        Lang::Rust => (
            "Rust",
            "src/lib.rs",
            format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
            "\nrustup target add wasm32-wasip2   # once",
        ),
        Lang::Python => (
            "Python",
            "app.py",
            format!("{name}.wasm"),
            "\npython3 -m pip install componentize-py==0.25.1   # once",
        ),
        Lang::Js => (
            "JavaScript",
            "app.js",
            format!("{name}.wasm"),
            "\nnpm install -g @bytecodealliance/componentize-js@0.23.0   # once\ncargo install weval --version 0.5.0 --locked   # once, optional: ahead of time, 1.4x faster",
        ),
    };
    let mut files: Vec<(&str, String)> = vec![
        ("fixtures/greeting.json", FIXTURE.to_string()),
        ("schemas/greeting.sent.json", SCHEMA.to_string()),
    ];
    match new.lang {
        Lang::Rust => {
            let sdk = sdk_path(new.sdk.as_deref())?;
            files.push((
                "Cargo.toml",
                include_str!("../templates/rust/Cargo.toml").into(),
            ));
            files.push((
                "src/lib.rs",
                include_str!("../templates/rust/lib.rs").into(),
            ));
            files.push((
                ".cargo/config.toml",
                include_str!("../templates/rust/cargo-config.toml").into(),
            ));
            files.push((".gitignore", "target/\n".into()));
            for (_, text) in &mut files {
                *text = text.replace("@SDK@", &sdk.display().to_string());
            }
        }
        Lang::Python => {
            files.push(("app.py", include_str!("../templates/python/app.py").into()));
            files.push((
                "switchyard.py",
                include_str!("../../sdk/python/switchyard.py").into(),
            ));
            files.push(("wit/switchyard.wit", WIT.into()));
            files.push((".gitignore", "*.wasm\n__pycache__/\n".into()));
        }
        Lang::Js => {
            // The world exports `on-timer` too, and componentize-js looks for
            // every export in app.js itself: the template re-exports the
            // helper's `onTimer`, which emits nothing.
            let app = include_str!("../templates/js/app.js").to_string();
            files.push(("app.js", app));
            files.push((
                "switchyard.js",
                include_str!("../../sdk/js/switchyard.js").into(),
            ));
            files.push((
                "componentize.mjs",
                include_str!("../../sdk/js/componentize.mjs").into(),
            ));
            files.push(("wit/switchyard.wit", WIT.into()));
            files.push((".gitignore", "*.wasm\n".into()));
        }
    }
    files.push(("router.toml", ROUTER.into()));
    files.push(("README.md", README.into()));
    let build = crate::config::Build::default_command_for(new.lang);
    for (path, text) in files {
        // Templates mark their blanks `@LIKE_THIS@`, which no handler,
        // helper or WIT file contains.
        let text = text
            .replace("@NAME@", name)
            .replace("@LANGUAGE@", language)
            .replace("@DIR@", &shown)
            .replace("@HANDLER@", handler)
            .replace("@SETUP@", setup)
            .replace("@WASM@", &wasm)
            .replace("@BUILD@", build)
            .replace("@BUILD_HERE@", &build.replace("{wasm}", &wasm));
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    Ok(dir)
}

/// The Rust SDK crate: `given`, or `plugins/sdk` of this binary's checkout.
fn sdk_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let sdk = given
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk"));
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize())
        .transpose()?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no switchyard-sdk crate there; pass `--sdk` with the path of plugins/sdk in a Switchyard checkout",
                sdk.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouterConfig;

    #[test]
    fn every_language_gets_a_config_that_loads_and_a_short_handler() {
        for (lang, handler) in [
            (Lang::Rust, "src/lib.rs"),
            (Lang::Python, "app.py"),
            (Lang::Js, "app.js"),
        ] {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("hello");
            let new = NewPlugin {
                name: "hello".into(),
                lang,
                dir: Some(dir.clone()),
                sdk: None,
            };
            create(&new).unwrap();
            let config = RouterConfig::load(&dir.join("router.toml")).unwrap();
            let spec = &config.plugins[0];
            let build = spec.build.as_ref().expect("a build");
            assert_eq!(
                build.command,
                crate::config::Build::default_command_for(lang)
            );
            assert!(spec.schemas.is_some());
            let lines = std::fs::read_to_string(dir.join(handler)).unwrap();
            assert!(lines.lines().count() <= 30, "{handler} is too long");
            if lang == Lang::Js {
                assert!(lines.contains("export { onTimer }"), "{lines}");
            }
            let again = create(&new).unwrap_err().to_string();
            assert!(again.contains("not empty"), "{again}");
        }
    }

    #[test]
    fn a_bad_name_is_refused_with_the_rule() {
        let new = NewPlugin {
            name: "Hello World".into(),
            lang: Lang::Rust,
            dir: None,
            sdk: None,
        };
        assert!(create(&new).unwrap_err().to_string().contains("lowercase"));
    }
}
