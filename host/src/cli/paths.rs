//! Where the command keeps its files by default: the only place wfhost
//! reads `WFHOST_*` and the XDG variables (the library takes paths).

use std::path::PathBuf;

/// A user directory: `$XDG_…` when set, else `fallback` under `$HOME`.
fn user_dir(xdg: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(xdg)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(fallback)))
}

/// The state database when `--db` and `$WFHOST_DB` name none:
/// `wfhost/state.redb` in the user's data directory (`$XDG_DATA_HOME`, else
/// `~/.local/share`), else in the working directory.
pub fn default_database() -> PathBuf {
    user_dir("XDG_DATA_HOME", ".local/share")
        .unwrap_or_else(|| PathBuf::from("."))
        .join("wfhost")
        .join("state.redb")
}

/// Where compiled plugins are kept: `$WFHOST_CACHE_DIR`, else
/// `wfhost/components` in the user's cache directory (`$XDG_CACHE_HOME`,
/// else `~/.cache`); none when there is no home either.
pub fn component_cache() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WFHOST_CACHE_DIR").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    Some(
        user_dir("XDG_CACHE_HOME", ".cache")?
            .join("wfhost")
            .join("components"),
    )
}

/// The cap of the component cache from `$WFHOST_CACHE_MAX` (`500M`, `2G`),
/// if it sets one.
pub fn component_cache_max() -> anyhow::Result<Option<u64>> {
    match std::env::var("WFHOST_CACHE_MAX") {
        Ok(text) if !text.is_empty() => super::cache::parse_size(&text)
            .map(Some)
            .map_err(|err| anyhow::anyhow!("$WFHOST_CACHE_MAX: {err}")),
        _ => Ok(None),
    }
}
