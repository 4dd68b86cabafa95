//! `wechat-lua new DIR`: scaffolds a bot from templates built into the binary, so it works
//! from an installed binary with no source tree around.

use std::path::{Path, PathBuf};

/// The files of a new bot: path inside DIR, contents.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("scripts/main.lua", include_str!("templates/main.lua")),
    ("wechat-lua.toml", include_str!("templates/wechat-lua.toml")),
    ("types/wx.lua", include_str!("../../editor/wx.lua")),
    (".luarc.json", include_str!("templates/luarc.json")),
    (".gitignore", include_str!("templates/gitignore")),
];

/// Why a bot could not be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// DIR holds files already; `new` never overwrites anything.
    #[error("{0} exists and is not empty: choose a new directory")]
    NotEmpty(PathBuf),
    /// DIR exists but is a file.
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// A file or directory could not be made.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes a new bot into `dir` (created if missing, refused if not empty) and returns the
/// files written, in [`TEMPLATES`] order.
pub fn scaffold(dir: &Path) -> Result<Vec<PathBuf>, NewError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NewError::Write { path, source }
    };
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err(NewError::NotADirectory(dir.to_path_buf())),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(write_err(dir))?;
            if entries.next().is_some() {
                return Err(NewError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_err(dir)(e)),
    }
    let mut written = Vec::with_capacity(TEMPLATES.len());
    for (rel, contents) in TEMPLATES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        // create_new: should something appear in DIR meanwhile, it is not overwritten.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, contents.as_bytes()))
            .map_err(write_err(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// What to do after `new`, printed by the command.
pub fn next_steps(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "Next steps:\n\
         \x20 cd {dir}\n\
         \x20 wechat-lua check          # load the scripts, report mistakes with file:line\n\
         \x20 wechat-lua chat           # talk to the bot in the terminal\n\
         \x20 wechat-lua serve          # serve the WeChat callback at /wechat\n\
         Edit scripts/main.lua; settings are in wechat-lua.toml. Open the directory in an editor\n\
         with the Lua language server (LuaLS) for completion of wx.* from types/wx.lua."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_template_into_a_missing_or_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("bot");
        let files = scaffold(&target).unwrap();
        assert_eq!(files.len(), TEMPLATES.len());
        for (rel, contents) in TEMPLATES {
            assert_eq!(
                std::fs::read_to_string(target.join(rel)).unwrap(),
                *contents
            );
        }
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(scaffold(&empty).is_ok());
    }

    #[test]
    fn refuses_a_non_empty_dir_or_a_file_and_leaves_them_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        assert!(matches!(scaffold(dir.path()), Err(NewError::NotEmpty(_))));
        assert!(!dir.path().join("scripts").exists());
        let file = dir.path().join("keep.txt");
        assert!(matches!(scaffold(&file), Err(NewError::NotADirectory(_))));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    }

    #[test]
    fn the_luarc_names_the_types_and_the_wx_global() {
        let (_, luarc) = TEMPLATES.iter().find(|(p, _)| *p == ".luarc.json").unwrap();
        let json: serde_json::Value = serde_json::from_str(luarc).unwrap();
        assert_eq!(json["runtime.version"], "Lua 5.4");
        assert_eq!(json["diagnostics.globals"], serde_json::json!(["wx"]));
        assert_eq!(json["workspace.library"], serde_json::json!(["types"]));
    }
}
