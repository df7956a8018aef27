//! How a plugin is built from its sources, and the languages it can be
//! written in.

use std::path::{Path, PathBuf};

/// A plugin's source folder and the command that builds its `.wasm` there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The folder `switchyard dev` watches (`sources`).
    pub(crate) dir: PathBuf,
    /// The shell command, run in `dir` (`build`, or the default for the
    /// folder's language); `{wasm}` stands for the plugin's `.wasm` path,
    /// inserted already quoted for the shell (do not quote it again; the
    /// path is also in `$SWITCHYARD_WASM`).
    pub(crate) command: String,
}

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust with the `switchyard-sdk` crate.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

impl Build {
    /// The language of the plugin whose sources are in `dir`: Rust when it
    /// holds `Cargo.toml`, Python for `app.py`, JavaScript for `app.js`.
    pub(crate) fn detect(dir: &Path) -> Option<Lang> {
        [
            ("Cargo.toml", Lang::Rust),
            ("app.py", Lang::Python),
            ("app.js", Lang::Js),
        ]
        .into_iter()
        .find(|(file, _)| dir.join(file).is_file())
        .map(|(_, lang)| lang)
    }

    /// The default build command for a language, run in the plugin's folder.
    pub(crate) fn default_command_for(lang: Lang) -> &'static str {
        match lang {
            Lang::Rust => "cargo build --release --target wasm32-wasip2",
            Lang::Python => "componentize-py -d wit -w handler componentize app -o {wasm}",
            // Ahead of time (weval) when `weval` is on the PATH, 1.4 times
            // faster per event (BENCHMARKS.md, P8); SpiderMonkey's
            // interpreter otherwise. componentize-js would download weval
            // from GitHub, so it is named here: `scripts/setup.sh --test`
            // or `cargo install weval --version 0.5.0 --locked` puts it there.
            // Through the folder's `componentize.mjs` when it has one
            // (`switchyard new` writes it): the same componentize-js, with
            // bindings that copy strings into the plugin 2x faster (P8).
            Lang::Js => {
                "$([ -f componentize.mjs ] && echo node componentize.mjs || echo componentize-js) $(command -v weval >/dev/null && echo --aot --weval-bin $(command -v weval)) --wit wit -n handler -d http -d fetch-event -o {wasm} app.js"
            }
        }
    }

    /// The command with `{wasm}` replaced by `wasm`, shell-quoted.
    pub(crate) fn command_for(&self, wasm: &Path) -> String {
        let quoted = format!("'{}'", wasm.display().to_string().replace('\'', "'\\''"));
        self.command.replace("{wasm}", &quoted)
    }
}
