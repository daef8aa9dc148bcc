//! `--fix`: the repairs findings ask for, each limited to the store's and
//! the copy's own two paths.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use super::{Finding, Fix, Level};
use crate::postfix::{DeployError, Deployment, perms, publish};
use crate::store::{OpenOptions, Store, StoreError, lock_path};

fn fix_perms(path: &Path, own: perms::Ownership, opts: &OpenOptions) -> Result<(), DeployError> {
    if !lock_path(path).exists() {
        // A read-only open creates LMDB's lock file, so it can get its modes.
        Store::open_read(path, opts)?;
    }
    perms::apply(path, own)?;
    Ok(())
}

fn publish_copy(
    store: &Path,
    copy: &Path,
    own: perms::Ownership,
    opts: &OpenOptions,
) -> Result<(), DeployError> {
    let source = Store::open_read(store, opts)?;
    publish::publish(&source, copy, opts)?;
    perms::apply(copy, own)?;
    Ok(())
}

/// Apply the repairs; returns the ones that failed, with why.
pub fn apply_fixes(
    wanted: &BTreeSet<Fix>,
    d: &Deployment,
    opts: &OpenOptions,
) -> Vec<(Fix, DeployError)> {
    let mut failed = Vec::new();
    if wanted.contains(&Fix::StorePerms)
        && let Err(e) = fix_perms(&d.store, d.ownership, opts)
    {
        failed.push((Fix::StorePerms, e));
    }
    let Some(copy) = &d.copy else {
        return failed;
    };
    let mut published = false;
    if wanted.contains(&Fix::ReplaceHardLink) && publish::same_file(&d.store, copy) {
        // The copy's own two paths, and only while the copy is still a
        // second name of the store.
        let lock = lock_path(copy);
        let r = fs::remove_file(copy)
            .and_then(|()| match fs::remove_file(&lock) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .map_err(|source| {
                DeployError::Store(StoreError::Io {
                    path: copy.clone(),
                    source,
                })
            })
            .and_then(|()| publish_copy(&d.store, copy, d.ownership, opts));
        match r {
            Ok(()) => published = true,
            Err(e) => failed.push((Fix::ReplaceHardLink, e)),
        }
    }
    if wanted.contains(&Fix::Publish) && !published {
        match publish_copy(&d.store, copy, d.ownership, opts) {
            Ok(()) => published = true,
            Err(e) => failed.push((Fix::Publish, e)),
        }
    }
    if wanted.contains(&Fix::CopyPerms)
        && !published
        && let Err(e) = fix_perms(copy, d.ownership, opts)
    {
        failed.push((Fix::CopyPerms, e));
    }
    failed
}

/// Mark findings repaired since `before`, and say which repairs failed.
pub fn mark_fixed(before: &[Finding], after: &mut [Finding], failed: &[(Fix, DeployError)]) {
    for f in after.iter_mut() {
        let prior = before
            .iter()
            .find(|b| b.id == f.id && b.subject == f.subject && b.level != Level::Ok);
        match prior {
            Some(b) if f.level == Level::Ok => {
                f.fixed = true;
                f.was = Some(b.message.clone());
            }
            _ => {
                if let Some(fix) = f.fix
                    && let Some((_, why)) = failed.iter().find(|(x, _)| *x == fix)
                {
                    f.message.push_str(&format!(" (--fix failed: {why})"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::doctor::{Report, SCHEMA};

    #[test]
    fn fixed_findings_are_marked() {
        let before = vec![
            Finding::error("store.perms", "/s", "bad".into(), "h".into())
                .with_fix(Some(Fix::StorePerms)),
        ];
        let mut after = vec![Finding::ok("store.perms", "/s", "good".into())];
        mark_fixed(&before, &mut after, &[]);
        assert!(after[0].fixed);
        assert_eq!(after[0].was.as_deref(), Some("bad"));
        let r = Report::new(Path::new("/s"), after);
        assert_eq!((r.errors, r.warnings, r.fixed), (0, 0, 1));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["schema"], SCHEMA);
        assert_eq!(j["findings"][0]["level"], "ok");
        assert_eq!(j["findings"][0]["fixed"], true);
        assert!(j["findings"][0].get("fix").is_none());
        let mut after = vec![before[0].clone()];
        let eperm = DeployError::Perms(perms::PermsError::Symlink("/s".into()));
        mark_fixed(&before, &mut after, &[(Fix::StorePerms, eperm)]);
        assert!(
            after[0]
                .message
                .contains("--fix failed: /s: is a symbolic link"),
            "{}",
            after[0].message
        );
    }
}
