//! Deployment for Postfix: what Postfix's configuration says (through
//! `postconf`, so `$name` expansion and defaults are Postfix's own), the
//! realm Postfix looks users up in, ownership and modes its processes can
//! read, and the copy of the store inside its chroot. Only this module knows
//! Postfix's paths and users.
//!
//! The configuration directory is Postfix's: `MAIL_CONFIG` in the
//! environment, else `/etc/postfix` (what `postconf` does by itself).

pub mod doctor;
pub mod perms;
pub mod publish;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the store sits inside the chroot, relative to `queue_directory`.
pub const CHROOT_ETC: &str = "etc";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostfixError {
    #[error("postconf not found (is Postfix installed?)")]
    NoPostconf,
    #[error("postconf failed: {0}")]
    Postconf(String),
    /// `postconf` answers, yet no deployment was set up for the store.
    #[error("Postfix integration could not be set up for this store")]
    NoIntegration,
}

/// Access to one Postfix instance's configuration.
#[derive(Debug, Clone)]
pub struct Postfix {
    postconf: PathBuf,
    /// `-c DIR`, when not the default (`MAIL_CONFIG` is honoured by postconf).
    config_dir: Option<PathBuf>,
}

fn find_postconf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SASLDB_POSTCONF") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("postconf"))
        .find(|p| p.is_file())
}

impl Postfix {
    /// The local Postfix, if `postconf` exists.
    pub fn detect(config_dir: Option<&Path>) -> Result<Postfix, PostfixError> {
        let postconf = find_postconf().ok_or(PostfixError::NoPostconf)?;
        Ok(Postfix {
            postconf,
            config_dir: config_dir.map(Path::to_path_buf),
        })
    }

    fn run(&self, args: &[&str]) -> Result<String, PostfixError> {
        let mut cmd = Command::new(&self.postconf);
        if let Some(dir) = &self.config_dir {
            cmd.arg("-c").arg(dir);
        }
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| PostfixError::Postconf(crate::sys::strerror(&e)))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(PostfixError::Postconf(
                err.lines().next().unwrap_or("failed").to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One main.cf parameter, `$name`s expanded as Postfix expands them.
    pub fn get(&self, key: &str) -> Result<String, PostfixError> {
        Ok(self
            .run(&["-x", "-h", key])?
            .trim_end_matches('\n')
            .to_string())
    }

    /// Is a parameter set explicitly in main.cf (`postconf -n`)?
    pub fn is_set(&self, key: &str) -> Result<bool, PostfixError> {
        Ok(self
            .run(&["-n"])?
            .lines()
            .any(|l| l.split('=').next().is_some_and(|k| k.trim() == key)))
    }

    pub fn config_dir(&self) -> PathBuf {
        self.config_dir
            .clone()
            .or_else(|| std::env::var_os("MAIL_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/etc/postfix"))
    }

    pub fn queue_directory(&self) -> Result<PathBuf, PostfixError> {
        Ok(PathBuf::from(self.get("queue_directory")?))
    }

    /// The realm Postfix passes to Cyrus SASL for a login without `@`:
    /// `smtpd_sasl_local_domain` when set, else `myhostname`.
    pub fn sasl_realm(&self) -> Result<(String, &'static str), PostfixError> {
        let local = self.get("smtpd_sasl_local_domain")?;
        if !local.is_empty() {
            return Ok((local, "smtpd_sasl_local_domain"));
        }
        Ok((self.get("myhostname")?, "myhostname"))
    }

    /// master.cf services that run `smtpd`, with their chroot flag
    /// (`-` means the default, which is `y` on Debian's packaging and `n`
    /// upstream; `postconf -F` reports what Postfix will use).
    pub fn smtpd_services(&self) -> Result<Vec<(String, bool)>, PostfixError> {
        let mut out = Vec::new();
        for line in self.run(&["-M"])?.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || !f[7].ends_with("smtpd") {
                continue;
            }
            let chroot = match f[4] {
                "y" => true,
                "n" => false,
                _ => self
                    .run(&["-F", &format!("{}/{}/chroot", f[0], f[1])])?
                    .trim_end()
                    .ends_with("= y"),
            };
            out.push((format!("{}/{}", f[0], f[1]), chroot));
        }
        Ok(out)
    }

    /// True when some smtpd runs chrooted: then it can only read the copy of
    /// the store under `queue_directory`.
    pub fn smtpd_chrooted(&self) -> Result<bool, PostfixError> {
        Ok(self.smtpd_services()?.iter().any(|(_, c)| *c))
    }

    /// The unprivileged user Postfix's daemons run as.
    pub fn mail_owner(&self) -> Result<String, PostfixError> {
        self.get("mail_owner")
    }

    /// The published copy of `store`: `<queue_directory>/etc/<file name>`.
    pub fn chroot_copy(&self, store: &Path) -> Result<PathBuf, PostfixError> {
        let name = store
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| OsString::from("sasldb2"));
        Ok(self.queue_directory()?.join(CHROOT_ETC).join(name))
    }
}

/// Without `--postfix` or a setting, integration turns itself on only for
/// Postfix's own store path, so `-f` on a scratch file never touches the
/// machine's Postfix.
pub fn auto_applies(store: &Path) -> bool {
    store == Path::new(crate::store::DEFAULT_SASLDB)
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Postfix(#[from] PostfixError),
    #[error(transparent)]
    Perms(#[from] perms::PermsError),
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Postfix integration for one store: who owns it, and where its chroot
/// copy goes (when smtpd runs chrooted).
#[derive(Debug, Clone)]
pub struct Deployment {
    pub postfix: Postfix,
    pub store: PathBuf,
    /// `<queue_directory>/etc/<name>` when some smtpd is chrooted.
    pub copy: Option<PathBuf>,
    pub group: String,
    pub ownership: perms::Ownership,
}

/// What one deployment step did.
#[derive(Debug, Default, Clone)]
pub struct DeployReport {
    pub published: Option<(PathBuf, publish::Published)>,
    pub perms: Vec<String>,
}

impl Deployment {
    pub fn new(
        postfix: Postfix,
        store: &Path,
        group: Option<&str>,
    ) -> Result<Deployment, DeployError> {
        let owner = postfix.mail_owner()?;
        let (group, gid) = perms::postfix_group(&owner, group)?;
        let copy = if postfix.smtpd_chrooted()? {
            let c = postfix.chroot_copy(store)?;
            (c != store).then_some(c)
        } else {
            None
        };
        // root:<group> when run as root; otherwise the files stay ours.
        let uid = nix::unistd::geteuid().as_raw();
        Ok(Deployment {
            postfix,
            store: store.to_path_buf(),
            copy,
            group,
            ownership: perms::Ownership { uid, gid },
        })
    }

    /// After a change: fix owner and modes of the store, then bring the
    /// chroot copy up to date and fix its owner and modes too.
    pub fn after_write(&self, source: &crate::store::Store) -> Result<DeployReport, DeployError> {
        let mut report = DeployReport::default();
        report
            .perms
            .extend(perms::apply(&self.store, self.ownership)?.files);
        if let Some(copy) = &self.copy {
            let opts = crate::store::OpenOptions::default();
            let stats = publish::publish(source, copy, &opts)?;
            report
                .perms
                .extend(perms::apply(copy, self.ownership)?.files);
            report.published = Some((copy.clone(), stats));
        }
        Ok(report)
    }
}
