//! A snapshot of the scripts: every `.lua` file under the scripts root, read once per (re)load,
//! so one load sees one consistent set and `require` never touches the disk mid-message.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::ScriptError;

/// Name of the entry file when the scripts location is a directory.
pub const ENTRY_FILE: &str = "main.lua";
/// Bounds on what a snapshot reads, so a mistaken `--scripts /` cannot eat the machine.
const MAX_FILES: usize = 2000;
const MAX_TOTAL_BYTES: usize = 32 * 1024 * 1024;

/// Every script of one load, keyed by its path relative to the root (with `/`).
#[derive(Debug, Clone)]
pub struct ScriptSources {
    /// The directory scripts are resolved against.
    root: PathBuf,
    /// `root` as the user named it, for chunk names in error messages.
    display_root: String,
    /// The entry file, relative to `root`.
    entry: String,
    /// Whether subdirectories belong to the set (a directory) or not (a single file's folder).
    recursive: bool,
    files: HashMap<String, Arc<str>>,
}

impl ScriptSources {
    /// Reads the scripts at `location`: a directory whose entry is `main.lua`, or one `.lua` file
    /// (whose siblings can be `require`d).
    pub fn read(location: &Path) -> Result<Self, ScriptError> {
        let meta = std::fs::metadata(location).map_err(|e| ScriptError::Read {
            path: location.display().to_string(),
            reason: e.to_string(),
        })?;
        let (root, entry, recursive) = if meta.is_dir() {
            (location.to_path_buf(), ENTRY_FILE.to_string(), true)
        } else {
            let parent = location
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = location
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (parent.to_path_buf(), name, false)
        };
        let display_root = root.display().to_string();
        let mut sources = ScriptSources {
            root,
            display_root,
            entry,
            recursive,
            files: HashMap::new(),
        };
        let mut total = 0usize;
        let root = sources.root.clone();
        sources.collect(&root, "", &mut total)?;
        if !sources.files.contains_key(&sources.entry) {
            return Err(ScriptError::NoEntry {
                path: sources.display_path(&sources.entry),
            });
        }
        Ok(sources)
    }

    fn collect(&mut self, dir: &Path, prefix: &str, total: &mut usize) -> Result<(), ScriptError> {
        let read_err = |path: &Path, e: std::io::Error| ScriptError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let entries = std::fs::read_dir(dir).map_err(|e| read_err(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_err(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let file_type = entry.file_type().map_err(|e| read_err(&path, e))?;
            let rel = format!("{prefix}{name}");
            if file_type.is_dir() {
                if self.recursive {
                    self.collect(&path, &format!("{rel}/"), total)?;
                }
            } else if name.ends_with(".lua") {
                let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
                *total += text.len();
                if self.files.len() >= MAX_FILES || *total > MAX_TOTAL_BYTES {
                    return Err(ScriptError::Read {
                        path: self.display_root.clone(),
                        reason: format!(
                            "more than {MAX_FILES} scripts or {} MiB of them",
                            MAX_TOTAL_BYTES >> 20
                        ),
                    });
                }
                self.files.insert(rel, Arc::from(text));
            }
        }
        Ok(())
    }

    /// The entry file, relative to the root.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The directory scripts are resolved against.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the watcher must look into subdirectories.
    pub fn recursive(&self) -> bool {
        self.recursive
    }

    /// Paths of every script in the set, relative to the root.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The source of a script by its path relative to the root.
    pub fn get(&self, rel: &str) -> Option<&str> {
        self.files.get(rel).map(|s| &**s)
    }

    /// The path users see in messages, e.g. `scripts/lib/menu.lua`.
    pub fn display_path(&self, rel: &str) -> String {
        if self.display_root == "." {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.display_root.trim_end_matches('/'))
        }
    }

    /// Resolves a module name (`lib.menu`) to a script path (`lib/menu.lua` or
    /// `lib/menu/init.lua`); names that would leave the root resolve to nothing.
    pub fn resolve_module(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.contains(['/', '\\']) || name.split('.').any(str::is_empty) {
            return None;
        }
        let base = name.replace('.', "/");
        [format!("{base}.lua"), format!("{base}/init.lua")]
            .into_iter()
            .find(|candidate| self.files.contains_key(candidate))
    }

    /// Resolves a path given to `dofile`/`loadfile`, relative to the root and never outside it.
    pub fn resolve_file(&self, path: &str) -> Option<String> {
        let mut parts = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(part) => parts.push(part.to_str()?),
                Component::CurDir => {}
                _ => return None,
            }
        }
        let rel = parts.join("/");
        self.files.contains_key(&rel).then_some(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_directory_and_resolves_modules_inside_it_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib/menu")).unwrap();
        std::fs::write(dir.path().join("main.lua"), "return 1").unwrap();
        std::fs::write(dir.path().join("lib/util.lua"), "return 2").unwrap();
        std::fs::write(dir.path().join("lib/menu/init.lua"), "return 3").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let s = ScriptSources::read(dir.path()).unwrap();
        assert_eq!(s.entry(), "main.lua");
        assert_eq!(
            s.resolve_module("lib.util").as_deref(),
            Some("lib/util.lua")
        );
        assert_eq!(
            s.resolve_module("lib.menu").as_deref(),
            Some("lib/menu/init.lua")
        );
        assert_eq!(s.resolve_module("..main"), None);
        assert_eq!(s.resolve_module("lib/util"), None);
        assert_eq!(
            s.resolve_file("./lib/util.lua").as_deref(),
            Some("lib/util.lua")
        );
        assert_eq!(s.resolve_file("../main.lua"), None);
        assert_eq!(s.resolve_file("/etc/passwd"), None);
        assert!(s.get("notes.txt").is_none());
    }

    #[test]
    fn a_single_file_is_the_entry_and_a_missing_entry_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("echo.lua"), "return 1").unwrap();
        let s = ScriptSources::read(&dir.path().join("echo.lua")).unwrap();
        assert_eq!(s.entry(), "echo.lua");
        assert!(!s.recursive());
        let err = ScriptSources::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("main.lua"), "{err}");
    }
}
