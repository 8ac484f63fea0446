//! Reading and writing the files krun rewrites: a bundle's config.json and an
//! exec's process file. A file is replaced whole (written beside it, then
//! renamed), keeping its permissions: an engine never sees half of one.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::rewrite::{self, Km};

/// Rewrites `bundle/config.json` to run its process under `km`.
pub fn rewrite_config(bundle: &Path, km: &Path, options: &[String]) -> Result<()> {
    let path = bundle.join("config.json");
    let mut config = read_json(&path)?;
    let kvm = rewrite::host_kvm()?;
    rewrite::rewrite_config(&mut config, &Km { path: km, options }, kvm)
        .with_context(|| format!("rewriting {}", path.display()))?;
    replace(&path, &serde_json::to_vec_pretty(&config)?)
}

/// Rewrites an `exec --process` file to run its process under `km`.
pub fn rewrite_process_file(path: &Path, km: &Path, options: &[String]) -> Result<()> {
    let mut process = read_json(path)?;
    rewrite::rewrite_process(&mut process, &Km { path: km, options })
        .with_context(|| format!("rewriting {}", path.display()))?;
    replace(path, &serde_json::to_vec_pretty(&process)?)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

fn replace(path: &Path, contents: &[u8]) -> Result<()> {
    let perms = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".krun");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, perms)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("replacing {}", path.display()))
}
