//! `resources.json`: what `provision` created, by logical id, so `env` and `pump` resolve `!Ref` and
//! `!GetAtt` without asking the services to list anything. Also where the repo and the state dir are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "resources.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct State(pub BTreeMap<String, ResourceState>);

/// One provisioned resource: its CloudFormation type, what `Ref` returns, and its `GetAtt` attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl State {
    pub fn get(&self, logical_id: &str) -> Option<&ResourceState> {
        self.0.get(logical_id)
    }

    pub fn insert(&mut self, logical_id: &str, r: ResourceState) {
        self.0.insert(logical_id.to_string(), r);
    }

    pub fn load(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "{} does not exist: run `ferry-local provision` first",
                    path.display()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes atomically (temp file + rename) so a reader never sees half a file.
    pub fn save(&self, state_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let path = state_dir.join(STATE_FILE);
        let tmp = state_dir.join(format!(".{STATE_FILE}.{}", std::process::id()));
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(path)
    }
}

/// The repository root: `$FERRY_ROOT`, else the nearest ancestor of the working directory holding
/// `infra/template.yaml`, else the checkout this binary was built from.
pub fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("FERRY_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join("infra/template.yaml").is_file() {
                return dir.to_path_buf();
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn default_template_path() -> PathBuf {
    repo_root().join("infra/template.yaml")
}

/// `$FERRY_STATE_DIR`, else `.ferry` in the repo root.
pub fn state_dir() -> PathBuf {
    match std::env::var_os("FERRY_STATE_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => repo_root().join(".ferry"),
    }
}
