//! COPY and ADD: sources from the context (or `--from` a stage or image)
//! resolved and hashed for the cache, then copied into an overlay of the
//! stage's layers whose writable layer becomes the step's layer.

use super::cache;
use super::copy::{copy_all, CopyOptions};
use super::fsroot::Root;
use super::instruction::CopyArgs;
use super::mount::WorkMount;
use super::parser::Heredoc;
use super::sources::{Matched, SourceTree};
use super::state::State;
use super::steps::{absolute_dest, Builder};
use super::words::{self, Vars};
use super::{stage_ref, Stage};
use crate::commit::commit_unmounted_upper;
use crate::store::LayerRecord;
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// `--chown` → uid:gid, names looked up in the destination's /etc/passwd and
/// /etc/group; a user without a group gets the uid as gid (Docker's reference).
fn resolve_chown(spec: &str, rootfs: &Path) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            crate::config_gen::resolve_user(user, rootfs)
                .with_context(|| format!("--chown={spec}: unable to find user {user}"))?
                .uid
        }
    };
    let gid = match group {
        None | Some("") => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                crate::config_gen::resolve_user(&format!("0:{g}"), rootfs)
                    .with_context(|| format!("--chown={spec}: unable to find group {g}"))?
                    .gid
            }
        },
    };
    Ok((uid, gid))
}

fn parse_chmod(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| anyhow!("--chmod={s}: only octal modes (e.g. 0755) are supported"))
}

/// Here-document sources written as files into a directory of the store's
/// `tmp/`, removed on drop.
struct InlineFiles(std::path::PathBuf);

impl InlineFiles {
    fn write(
        store: &crate::store::Store,
        docs: &[Heredoc],
        vars: &Vars,
        escape: char,
    ) -> Result<Option<InlineFiles>> {
        if docs.is_empty() {
            return Ok(None);
        }
        let dir = InlineFiles(store.tmp_path("build-heredoc"));
        std::fs::create_dir(&dir.0).with_context(|| format!("create {}", dir.0.display()))?;
        for h in docs {
            let text = if h.expand {
                words::expand_heredoc(&h.content, vars, escape).map_err(|e| anyhow!(e))?
            } else {
                h.content.clone()
            };
            let path = dir.0.join(&h.name);
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .with_context(|| format!("chmod {}", path.display()))?;
        }
        Ok(Some(dir))
    }
}

impl Drop for InlineFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Builder<'_> {
    /// The layers of `--from=NAME`: an earlier stage, or an image in the store.
    fn source_layers(
        &mut self,
        from: &str,
        stages: &[Stage],
        current: usize,
    ) -> Result<(Vec<LayerRecord>, String)> {
        if let Some(j) = stage_ref(stages, from, current) {
            let s = self.results[j]
                .as_ref()
                .ok_or_else(|| anyhow!("stage {from} was not built"))?;
            return Ok((s.layers.clone(), format!("stage {from}")));
        }
        if stages
            .iter()
            .any(|s| s.alias.as_deref() == Some(from.to_ascii_lowercase().as_str()))
        {
            bail!("--from={from}: a stage can only copy from stages before it");
        }
        let rec = self.base_image(from)?;
        Ok((rec.layers, format!("image {from}")))
    }

    pub(super) fn copy(
        &mut self,
        st: &mut State,
        c: &CopyArgs,
        add: bool,
        stages: &[Stage],
        current: usize,
        keyword: &str,
    ) -> Result<()> {
        let vars = st.vars();
        let sources: Vec<String> = c
            .sources
            .iter()
            .map(|w| self.expand(w, &vars))
            .collect::<Result<_>>()?;
        let dest = self.expand(&c.dest, &vars)?;
        let chown = c
            .chown
            .as_ref()
            .map(|w| self.expand(w, &vars))
            .transpose()?;
        let chmod = c
            .chmod
            .as_ref()
            .map(|w| self.expand(w, &vars))
            .transpose()?;
        let mode = chmod.as_deref().map(parse_chmod).transpose()?;
        let from = c.from.as_ref().map(|w| self.expand(w, &vars)).transpose()?;
        if add {
            if let Some(u) = sources
                .iter()
                .find(|s| s.contains("://") || s.starts_with("git@"))
            {
                bail!("ADD {u}: remote sources are not supported (only local files and archives)");
            }
        }
        let count = sources.len() + c.inline.len();
        if count > 1 && !dest.ends_with('/') {
            bail!("when using {keyword} with more than one source file, the destination must be a directory and end with a /");
        }
        let dest_is_dir = dest.ends_with('/') || dest == "." || count > 1;
        let inline = InlineFiles::write(self.store, &c.inline, &vars, self.escape)?;
        let inline_root = inline.as_ref().map(|d| Root::open(&d.0)).transpose()?;
        let inline_tree = inline_root.as_ref().map(|root| SourceTree {
            root,
            ignore: None,
            label: "here-document".into(),
        });
        let mut inline_matched: Vec<Matched> = Vec::new();
        if let Some(t) = &inline_tree {
            for h in &c.inline {
                inline_matched.extend(t.resolve(&h.name)?);
            }
        }
        let dest_abs = absolute_dest(&dest, &st.workdir());

        let (source_mount, label) = match &from {
            None => (None, "build context".to_string()),
            Some(f) => {
                let (layers, label) = self.source_layers(f, stages, current)?;
                (Some(WorkMount::new(self.store, &layers)?), label)
            }
        };
        let source_root = match &source_mount {
            Some(m) => Some(Root::open(m.rootfs())?),
            None => None,
        };
        let (context, ignore) = (self.context.clone(), self.ignore.clone());
        let tree = SourceTree {
            root: source_root.as_ref().unwrap_or(&context),
            ignore: if from.is_none() { Some(&ignore) } else { None },
            label,
        };
        let mut matched: Vec<Matched> = Vec::new();
        for s in &sources {
            matched.extend(tree.resolve(s)?);
        }
        let mut h = Sha256::new();
        for m in &matched {
            tree.hash(m, &mut h)?;
        }
        if let Some(t) = &inline_tree {
            for m in &inline_matched {
                t.hash(m, &mut h)?;
            }
        }
        let content = hex::encode(h.finalize());
        let mut text = keyword.to_string();
        if let Some(o) = &chown {
            text.push_str(&format!(" --chown={o}"));
        }
        if let Some(m) = &chmod {
            text.push_str(&format!(" --chmod={m}"));
        }
        if let Some(f) = &from {
            text.push_str(&format!(" --from={f}"));
        }
        let markers = c.inline.iter().map(|h| h.marker.clone());
        let all: Vec<String> = markers.chain(sources.iter().cloned()).collect();
        let created_by = format!("{text} {} {dest_abs}", all.join(" "));
        let key = cache::key(&[
            keyword.as_bytes(),
            cache::state_id(&st.layers, &st.config).as_bytes(),
            created_by.as_bytes(),
            &[dest_is_dir as u8],
            content.as_bytes(),
        ]);
        if self.use_cache(st, &key, &created_by) {
            return Ok(());
        }
        let work = WorkMount::new(self.store, &st.layers)?;
        let dst = Root::open(work.rootfs())?;
        let owner = match &chown {
            Some(spec) => resolve_chown(spec, work.rootfs())?,
            None => (0, 0),
        };
        let opts = CopyOptions {
            owner,
            chmod: mode,
            unpack: add,
        };
        copy_all(&tree, &matched, &dst, &dest_abs, dest_is_dir, &opts)?;
        if let Some(t) = &inline_tree {
            let text = CopyOptions {
                unpack: false,
                ..opts
            };
            copy_all(t, &inline_matched, &dst, &dest_abs, dest_is_dir, &text)?;
        }
        drop(dst);
        work.unmount()?;
        let layer = commit_unmounted_upper(self.store, &st.layers, &work.upper)?;
        drop(work);
        drop(source_root);
        drop(source_mount);
        self.made(st, &key, Some(layer), &created_by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_is_octal() {
        assert_eq!(parse_chmod("0755").unwrap(), 0o755);
        assert_eq!(parse_chmod("644").unwrap(), 0o644);
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("77777").is_err());
    }
}
