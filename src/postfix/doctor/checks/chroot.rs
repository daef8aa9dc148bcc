//! `chroot.*`: the copy of the store a chrooted smtpd reads, under
//! `<queue_directory>/etc`.

use super::postfix_facts;
use super::store::{check_perms, check_probe, perms_fixable};
use crate::postfix::doctor::facts::{CopyFacts, Entries, Facts, Kind, PostfixFacts, StoreFacts};
use crate::postfix::doctor::{Finding, Fix, count};

/// `chroot.present`, `chroot.hard_link`, `chroot.content`, `chroot.perms`
/// and `chroot.access`; nothing without Postfix or without a store.
pub fn check(f: &Facts) -> Vec<Finding> {
    let store = &f.store;
    let Some(p) = postfix_facts(f) else {
        return Vec::new();
    };
    if store.data.is_none() {
        return Vec::new(); // store.file explains; there is nothing to copy
    }
    let Some(c) = &p.copy else {
        return vec![Finding::ok(
            "chroot.present",
            &store.path.display().to_string(),
            format!(
                "no smtpd service runs chrooted: Postfix reads {} itself, no copy is needed",
                store.path.display()
            ),
        )];
    };
    let present = present(store, c, p);
    let usable = present.level == crate::postfix::doctor::Level::Ok;
    let mut out = vec![present];
    if !usable {
        return out;
    }
    let link = hard_link(store, c);
    let linked = c.hard_link;
    out.push(link);
    if linked {
        return out;
    }
    out.push(content(store, c));
    out.extend(super::store::stale_maps("chroot.map", &c.path, &c.maps));
    if let Some(d) = &c.data {
        out.push(check_perms(
            "chroot.perms",
            &c.path,
            d,
            c.lock.as_ref(),
            Some(p),
            Some(Fix::CopyPerms),
        ));
    }
    if let Some(probe) = &c.probe {
        let bad = perms_fixable(&c.data, &c.lock, p);
        out.push(check_probe(
            "chroot.access",
            probe,
            &p.group,
            bad,
            Some(Fix::CopyPerms),
        ));
    }
    out
}

/// `chroot.present`: a regular file where the chrooted smtpd looks.
fn present(store: &StoreFacts, c: &CopyFacts, p: &PostfixFacts) -> Finding {
    let chrooted: Vec<&str> = p
        .services
        .iter()
        .filter(|s| s.chroot)
        .map(|s| s.name.as_str())
        .collect();
    let subject = c.path.display().to_string();
    let src = store.path.display().to_string();
    match &c.data {
        None => Finding::error(
            "chroot.present",
            &subject,
            format!(
                "{subject}: missing: smtpd runs chrooted ({}) and can only read this copy of {src}",
                chrooted.join(", ")
            ),
            "--fix (or saslpasswd --publish) creates it with the store's content; with Postfix integration on, every change keeps it current".into(),
        )
        .with_fix(Some(Fix::Publish)),
        Some(d) if d.kind != Kind::File => Finding::error(
            "chroot.present",
            &subject,
            format!("{subject}: not a regular file (a symbolic link or other): a chrooted smtpd cannot follow a link out of the chroot, and LMDB would keep the lock beside the link"),
            format!("remove {subject}; --fix then publishes a real copy"),
        ),
        Some(_) => Finding::ok(
            "chroot.present",
            &subject,
            format!(
                "{subject}: present for the chrooted smtpd ({})",
                chrooted.join(", ")
            ),
        ),
    }
}

/// `chroot.hard_link`: a second name of the store would share its data
/// file but not its lock file.
fn hard_link(store: &StoreFacts, c: &CopyFacts) -> Finding {
    let subject = c.path.display().to_string();
    let src = store.path.display().to_string();
    if !c.hard_link {
        return Finding::ok(
            "chroot.hard_link",
            &subject,
            format!("{subject}: a separate file, not a hard link of {src}"),
        );
    }
    Finding::error(
        "chroot.hard_link",
        &subject,
        format!(
            "{subject}: is a hard link of {src}: one data file with two lock files, so a writer using {src}-lock cannot see the smtpd readers registered in {subject}-lock and may reuse pages they are still reading"
        ),
        format!(
            "--fix removes the link (and {subject}-lock) and publishes a real copy in its place; then run `postfix reload` so running smtpd processes drop the old inode (until they exit they keep reading {src} under the other lock file)"
        ),
    )
    .with_fix(Some(Fix::ReplaceHardLink))
}

/// `chroot.content`: the copy holds what the store holds.
fn content(store: &StoreFacts, c: &CopyFacts) -> Finding {
    let subject = c.path.display().to_string();
    let src = store.path.display().to_string();
    match (&store.content, &c.content) {
        (_, Err(e)) => Finding::error(
            "chroot.content",
            &subject,
            e.to_string(),
            format!("remove {subject} and its lock file; --fix then publishes a fresh copy"),
        ),
        (Err(_), Ok(_)) => Finding::warning(
            "chroot.content",
            &subject,
            format!("{subject}: not compared: the store itself cannot be read"),
            "fix store.file first".into(),
        ),
        (Ok(s), Ok(cp)) => {
            let (missing, changed, extra) = diff(s, cp);
            if missing + changed + extra == 0 {
                Finding::ok(
                    "chroot.content",
                    &subject,
                    format!("{subject}: the same {} as {src}", count(s.len(), "key")),
                )
            } else {
                Finding::error(
                    "chroot.content",
                    &subject,
                    format!(
                        "{subject}: differs from {src}: {missing} keys missing, {changed} changed, {extra} extra: Postfix authenticates against an old state"
                    ),
                    "--fix (or saslpasswd --publish) applies the difference in one LMDB transaction; with Postfix integration on (--postfix, or postfix_integration: yes) every change does".into(),
                )
                .with_fix(Some(Fix::Publish))
            }
        }
    }
}

/// (keys the copy lacks, keys whose value differs, keys only in the copy).
pub fn diff(source: &Entries, copy: &Entries) -> (usize, usize, usize) {
    let (mut i, mut j) = (0, 0);
    let (mut missing, mut changed, mut extra) = (0, 0, 0);
    while i < source.len() || j < copy.len() {
        match (source.get(i), copy.get(j)) {
            (Some((sk, sv)), Some((ck, cv))) => match sk.cmp(ck) {
                std::cmp::Ordering::Less => {
                    missing += 1;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    extra += 1;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if sv != cv {
                        changed += 1;
                    }
                    i += 1;
                    j += 1;
                }
            },
            (Some(_), None) => {
                missing += 1;
                i += 1;
            }
            _ => {
                extra += 1;
                j += 1;
            }
        }
    }
    (missing, changed, extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::doctor::checks::fixtures::entries;

    #[test]
    fn diff_counts() {
        let a = entries(&[("a", "r", "p"), ("b", "r", "p"), ("c", "r", "p")]);
        let mut b = entries(&[("b", "r", "p"), ("c", "r", "p"), ("d", "r", "p")]);
        b[0].1 = b"other".to_vec();
        assert_eq!(diff(&a, &b), (1, 1, 1));
        assert_eq!(diff(&a, &a), (0, 0, 0));
    }
}
