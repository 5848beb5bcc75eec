//! Where a lake is and how it is configured. `tarn init DIR` writes `DIR/tarn.toml`; a lake
//! is found by `--lake`, else `TARN_LAKE`, else the nearest `tarn.toml` in the current
//! directory or its parents.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "tarn.toml";

/// The contents of `tarn.toml`. Relative paths are relative to the file's directory.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LakeConfig {
    /// The catalog: a path to a SQLite file (`catalog.db`), or `sqlite://PATH`.
    pub catalog: String,
    /// The storage root: a directory (`data`), or `file://PATH`.
    pub storage: String,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            catalog: "catalog.db".into(),
            storage: "data".into(),
        }
    }
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> &'a str {
    value.strip_prefix(scheme).unwrap_or(value)
}

impl LakeConfig {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{} is not a valid lake configuration: {e}",
                path.display()
            ))
        })
    }

    pub fn catalog_path(&self, dir: &Path) -> Result<PathBuf> {
        if self.catalog.starts_with("postgres://") || self.catalog.starts_with("postgresql://") {
            return Err(Error::Config(format!(
                "catalog {:?}: this build of tarn supports SQLite catalogs only",
                self.catalog
            )));
        }
        Ok(dir.join(strip_scheme(&self.catalog, "sqlite://")))
    }

    pub fn storage_path(&self, dir: &Path) -> Result<PathBuf> {
        if self.storage.contains("://") && !self.storage.starts_with("file://") {
            return Err(Error::Config(format!(
                "storage {:?}: this build of tarn supports local storage only",
                self.storage
            )));
        }
        Ok(dir.join(strip_scheme(&self.storage, "file://")))
    }
}

/// The lake directory to use: `explicit` (from `--lake` or `TARN_LAKE`) or the nearest
/// directory holding a `tarn.toml`, from `cwd` upwards.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        if d.join(CONFIG_FILE).is_file() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(Error::Config(
        "no lake found: pass --lake PATH, set TARN_LAKE, or run inside a lake made by `tarn init PATH`".into(),
    ))
}
