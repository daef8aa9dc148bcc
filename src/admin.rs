//! Account administration: the operations `saslpasswd` performs on a store.
//!
//! A run prepares its operations first (password rules checked, SCRAM keys
//! derived, key lengths checked) and only then opens one write transaction
//! for all of them, so a bad input never leaves a partial change behind.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::secret::{self, Change, SecretError, SetPolicy, USER_PASSWORD, Verdict};
use crate::store::pg::PgStore;
use crate::store::{Account, ReadView, Records, RecordsMut, Store, StoreError};

/// One requested change to one account.
#[derive(Debug, Clone)]
pub enum Op {
    Set { account: Account, password: Vec<u8> },
    Delete { account: Account },
}

impl Op {
    pub fn account(&self) -> &Account {
        match self {
            Op::Set { account, .. } | Op::Delete { account } => account,
        }
    }
}

/// An operation with its property changes worked out.
#[derive(Debug, Clone)]
pub struct Prepared {
    op: Op,
    changes: Vec<Change>,
}

/// What one operation did (or would do) to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    /// The store already held this password as the policy stores it.
    Unchanged,
    Deleted,
    /// Delete of an account that holds no secret.
    Absent,
}

/// Counts of outcomes over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub absent: usize,
}

impl Summary {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Absent => self.absent += 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Check that an account can be stored at all (NUL, LMDB key length).
pub fn check_account(account: &Account) -> Result<(), StoreError> {
    // userPassword and authPassword are the longest keys a set writes.
    account.key(USER_PASSWORD).map(|_| ())
}

/// Work out every operation's property changes. SCRAM derivation (PBKDF2)
/// dominates a large batch, so it is spread over the available cores;
/// `progress` hears how many operations are done.
pub fn prepare(
    policy: &SetPolicy,
    ops: Vec<Op>,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Prepared>, AdminError> {
    for op in &ops {
        if let Op::Set { account, password } = op {
            check_account(account)?;
            secret::validate(password)?;
        }
    }
    let one = |op: Op| -> Result<Prepared, SecretError> {
        let changes = match &op {
            Op::Set { password, .. } => secret::changes_for_set(policy, password)?,
            Op::Delete { .. } => secret::changes_for_delete(),
        };
        Ok(Prepared { op, changes })
    };
    // Only a large SCRAM batch is worth threads (and the cgroup reads
    // behind available_parallelism).
    let threads = if policy.scram.is_none() || ops.len() < 64 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    if threads == 1 {
        let mut out = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            out.push(one(op)?);
            if i % 1024 == 0 {
                progress(i);
            }
        }
        return Ok(out);
    }
    let done = AtomicUsize::new(0);
    let total = ops.len();
    let chunk = total.div_ceil(threads);
    let mut chunks: Vec<Vec<Op>> = Vec::with_capacity(threads);
    let mut rest = ops;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        chunks.push(rest);
        rest = tail;
    }
    let results: Vec<Result<Vec<Prepared>, SecretError>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| {
                let done = &done;
                let one = &one;
                s.spawn(move || {
                    c.into_iter()
                        .map(|op| {
                            let r = one(op);
                            done.fetch_add(1, Ordering::Relaxed);
                            r
                        })
                        .collect()
                })
            })
            .collect();
        while handles.iter().any(|h| !h.is_finished()) {
            progress(done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(50));
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(total);
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

fn classify(policy: &SetPolicy, p: &Prepared, props: &[(&[u8], &[u8])]) -> Outcome {
    match &p.op {
        Op::Set { password, .. } => {
            if props.is_empty() {
                Outcome::Created
            } else if secret::is_current(policy, password, props) {
                Outcome::Unchanged
            } else {
                Outcome::Updated
            }
        }
        Op::Delete { .. } => {
            let removes = p.changes.iter().any(|c| {
                props
                    .iter()
                    .any(|(name, _)| *name == c.property().as_bytes())
            });
            if removes {
                Outcome::Deleted
            } else {
                Outcome::Absent
            }
        }
    }
}

/// A rough size of what the operations write, for growing the map once.
fn estimated_bytes(prepared: &[Prepared]) -> usize {
    prepared
        .iter()
        .map(|p| {
            let a = p.op.account();
            p.changes
                .iter()
                .map(|c| match c {
                    Change::Put(name, v) => {
                        a.authid.len() + a.realm.len() + name.len() + v.len() + 32
                    }
                    Change::Delete(_) => 0,
                })
                .sum::<usize>()
        })
        .sum()
}

/// Apply everything in one write transaction.
pub fn apply(
    store: &Store,
    policy: &SetPolicy,
    prepared: &[Prepared],
    progress: &mut dyn FnMut(usize),
) -> Result<Summary, AdminError> {
    store.reserve(estimated_bytes(prepared))?;
    let summary = store.write(|w| apply_to(w, policy, prepared, progress))?;
    Ok(summary)
}

/// Apply everything in one PostgreSQL transaction; with `commit` false
/// (a dry run) the same work is done and rolled back.
pub fn apply_pg(
    store: &PgStore,
    policy: &SetPolicy,
    prepared: &[Prepared],
    commit: bool,
    progress: &mut dyn FnMut(usize),
) -> Result<Summary, AdminError> {
    let accounts: Vec<&Account> = prepared.iter().map(|p| p.op.account()).collect();
    let summary = store.write(&accounts, commit, |w| {
        apply_to(w, policy, prepared, progress)
    })?;
    Ok(summary)
}

/// The operations, in order, inside one backend's write transaction.
fn apply_to(
    w: &mut dyn RecordsMut,
    policy: &SetPolicy,
    prepared: &[Prepared],
    progress: &mut dyn FnMut(usize),
) -> Result<Summary, StoreError> {
    let mut summary = Summary::default();
    for (i, p) in prepared.iter().enumerate() {
        let account = p.op.account();
        let props = w.account_properties(account)?;
        let view: Vec<(&[u8], &[u8])> = props
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let outcome = classify(policy, p, &view);
        summary.add(outcome);
        if outcome != Outcome::Unchanged {
            for c in &p.changes {
                match c {
                    Change::Put(name, value) => w.set(account, name, value)?,
                    Change::Delete(name) => {
                        w.remove(account, name)?;
                    }
                }
            }
        }
        if i % 1024 == 0 {
            progress(i);
        }
    }
    Ok(summary)
}

/// What [`apply`] would do, read from a snapshot (for `--dry-run`); a
/// missing store reads as empty and is not created.
pub fn preview(
    view: Option<&ReadView<'_>>,
    policy: &SetPolicy,
    prepared: &[Prepared],
) -> Result<Summary, AdminError> {
    let mut summary = Summary::default();
    for p in prepared {
        let props = match view {
            Some(v) => v.properties(p.op.account())?,
            None => Vec::new(),
        };
        summary.add(classify(policy, p, &props));
    }
    Ok(summary)
}

/// Result of checking a password for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    Match,
    WrongPassword,
    /// The account exists but has no secret a password can be checked with.
    NoSecret,
    UnknownUser,
    /// No account at all in the realm (the common sign of a wrong realm).
    UnknownRealm,
}

/// Check `password` for `account` (see [`secret::verify`]).
pub fn check(
    view: &dyn Records,
    account: &Account,
    password: &[u8],
) -> Result<CheckResult, StoreError> {
    let props = view.account_properties(account)?;
    if props.is_empty() {
        return Ok(if view.realm_known(&account.realm)? {
            CheckResult::UnknownUser
        } else {
            CheckResult::UnknownRealm
        });
    }
    let props: Vec<(&[u8], &[u8])> = props
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    Ok(match secret::verify(&props, password) {
        Verdict::Match => CheckResult::Match,
        Verdict::Mismatch => CheckResult::WrongPassword,
        Verdict::NoSecret => CheckResult::NoSecret,
    })
}
