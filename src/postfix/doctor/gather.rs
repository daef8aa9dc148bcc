//! Gathering the facts: the only part of the doctor that reads the
//! machine (files, `postconf`, libsasl's plugins, and the probe run as
//! Postfix's user).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::facts::{
    CopyFacts, DbFormat, Entries, Facts, FileFacts, Foreign, Kind, LibsaslFacts, MapUsers, PARAMS,
    PostfixFacts, PostfixState, SaslFacts, Service, SocketState, StoreFacts,
};
use super::probe;
use crate::host;
use crate::migrate;
use crate::postfix::{Deployment, Postfix, PostfixError, publish};
use crate::saslconf::{self, ConfigError, SaslConfig};
use crate::store::{OpenOptions, Store, StoreError, lock_path};

/// Replaces libsasl's config search path after `<config_dir>/sasl`.
pub const SASL_PATH_ENV: &str = "SASLDB_DOCTOR_SASL_PATH";

/// What is at a path, without following a symbolic link.
fn file_facts(path: &Path) -> Option<FileFacts> {
    let m = fs::symlink_metadata(path).ok()?;
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    Some(FileFacts {
        kind,
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
    })
}

/// A sasldb of another build at `path`, read through (every page) to
/// count its accounts; None for LMDB, an empty file or no file.
fn gather_foreign(path: &Path) -> Option<Foreign> {
    let format = migrate::sniff(path).ok()?;
    matches!(
        format,
        migrate::Format::BerkeleyDbHash | migrate::Format::Gdbm
    )
    .then(|| Foreign {
        format,
        detected: migrate::detect(path),
    })
}

fn read_content(path: &Path, opts: &OpenOptions) -> Result<Entries, StoreError> {
    Store::open_read(path, opts).and_then(|s| s.read(|v| v.raw_entries()))
}

/// Who maps the store at `path` with less than its recorded map.
fn map_users(path: &Path) -> MapUsers {
    // Default options: the map the file records, not an admin's setting.
    let map_size = Store::open_read(path, &OpenOptions::default()).map_or(0, |s| s.map_size());
    if map_size == 0 {
        return MapUsers::default();
    }
    let short = crate::sys::mappings_of(path)
        .into_iter()
        .filter(|m| m.bytes < map_size as u64)
        .collect();
    MapUsers { map_size, short }
}

fn gather_store(path: &Path, opts: &OpenOptions) -> StoreFacts {
    let data = file_facts(path);
    // Not through a link: the link is the finding then.
    let foreign = data
        .filter(|d| d.kind == Kind::File)
        .and_then(|_| gather_foreign(path));
    let content = match data {
        // Not opened: LMDB would create a lock file beside the link.
        Some(d) if d.kind == Kind::Symlink => Err(StoreError::Symlink {
            path: path.to_path_buf(),
            target: fs::read_link(path).unwrap_or_default(),
        }),
        _ => read_content(path, opts),
    };
    StoreFacts {
        path: path.to_path_buf(),
        data,
        // Read after the open: a read-only open creates a missing lock file.
        lock: file_facts(&lock_path(path)),
        maps: if content.is_ok() {
            map_users(path)
        } else {
            MapUsers::default()
        },
        content,
        foreign,
    }
}

/// `postconf -x KEY...` as a map.
fn postconf_values(pf: &Postfix, keys: &[&str]) -> Result<BTreeMap<String, String>, PostfixError> {
    let mut args = vec!["-x"];
    args.extend_from_slice(keys);
    let text = pf.run(&args)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(" =")?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect())
}

/// master.cf `-o` overrides (`postconf -P -x`): (service/type, name, value).
fn service_overrides(pf: &Postfix) -> Result<Vec<(String, String, String)>, PostfixError> {
    let text = pf.run(&["-P", "-x"])?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(" =")?;
            let (service, name) = k.trim().rsplit_once('/')?;
            Some((service.to_string(), name.to_string(), v.trim().to_string()))
        })
        .collect())
}

/// Where libsasl (as Postfix sets it up) looks for `<appname>.conf`:
/// Debian's `<config_dir>/sasl` first, then `cyrus_sasl_config_path` when
/// set, else libsasl's own path (`SASLDB_DOCTOR_SASL_PATH` replaces it).
pub fn sasl_search_dirs(
    config_dir: &Path,
    cyrus_path: &str,
    override_path: Option<&str>,
) -> Vec<PathBuf> {
    let rest = if !cyrus_path.trim().is_empty() {
        cyrus_path
    } else {
        override_path.unwrap_or(saslconf::DEFAULT_CONF_PATH)
    };
    let mut dirs = vec![config_dir.join("sasl")];
    for d in rest.split(':').filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

fn gather_sasl(appname: &str, dirs: Vec<PathBuf>) -> SaslFacts {
    let found: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.join(format!("{appname}.conf")))
        .filter(|p| p.is_file())
        .collect();
    let config = match found.first() {
        None => Ok(SaslConfig::default()),
        Some(p) => fs::read(p)
            .map_err(|source| ConfigError::Io {
                path: p.clone(),
                source,
            })
            .and_then(|text| saslconf::parse(&text, p)),
    };
    SaslFacts {
        appname: appname.to_string(),
        searched: dirs,
        found,
        config,
    }
}

/// Directories libsasl may load plugins from.
fn plugin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir("/usr/lib")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains("-linux-"))
                .map(|e| e.path().join("sasl2"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.extend(["/usr/lib/sasl2", "/usr/lib64/sasl2", "/usr/local/lib/sasl2"].map(PathBuf::from));
    dirs
}

fn find_plugin(dirs: &[PathBuf], stem: &str) -> Option<PathBuf> {
    dirs.iter().find_map(|d| {
        let mut names: Vec<PathBuf> = fs::read_dir(d)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(stem))
            .map(|e| e.path())
            .collect();
        names.sort();
        names.into_iter().find(|p| p.is_file())
    })
}

/// Which database library a sasldb plugin uses, from the library names and
/// symbols in the file (what `ldd` and `nm -D` would show).
pub fn classify_plugin(bytes: &[u8]) -> DbFormat {
    let has = |n: &[u8]| bytes.windows(n.len()).any(|w| w == n);
    if has(b"liblmdb.so") || has(b"mdb_env_open") {
        DbFormat::Lmdb
    } else if has(b"libgdbm") || has(b"gdbm_open") {
        DbFormat::Gdbm
    } else if has(b"libdb-") || has(b"libdb.so") || has(b"db_create") {
        DbFormat::BerkeleyDb
    } else if has(b"dbm_open") {
        DbFormat::Ndbm
    } else {
        DbFormat::Unknown
    }
}

fn gather_libsasl() -> LibsaslFacts {
    let dirs = plugin_dirs();
    let plugin = find_plugin(&dirs, "libsasldb.so");
    let format = plugin
        .as_ref()
        .and_then(|p| fs::read(p).ok())
        .map_or(DbFormat::Unknown, |b| classify_plugin(&b));
    LibsaslFacts {
        plugin,
        format,
        sql_plugin: find_plugin(&dirs, "libsql.so"),
    }
}

/// Postfix's side: its parameters per smtpd service, the SASL configs and
/// auth sockets they name, the chroot copy, and the probes.
fn gather_postfix(
    d: &Deployment,
    store: &Path,
    opts: &OpenOptions,
    store_readable: bool,
) -> Result<PostfixFacts, PostfixError> {
    let pf = &d.postfix;
    let (main, services) = gather_services(pf)?;
    let mail_owner = pf.mail_owner()?;
    let (realm, realm_source) = pf.sasl_realm()?;
    let config_dir = pf.config_dir();
    let (sasl, sockets) = gather_sasl_setups(&config_dir, &main, &services);
    let copy = d
        .copy
        .as_ref()
        .map(|c| gather_copy(store, c, opts, &mail_owner));
    let store_probe = store_readable.then(|| probe::probe(store, &mail_owner));
    Ok(PostfixFacts {
        config_dir,
        group: d.group.clone(),
        ownership: d.ownership,
        realm,
        realm_source,
        main,
        services,
        copy,
        sasl,
        sockets,
        store_probe,
        mail_owner,
    })
}

/// main.cf as a pseudo-service, and every smtpd service with main.cf's
/// values overlaid by its own master.cf `-o` overrides.
fn gather_services(pf: &Postfix) -> Result<(Service, Vec<Service>), PostfixError> {
    let main_values = postconf_values(pf, &PARAMS)?;
    let overrides = service_overrides(pf)?;
    let services = pf
        .smtpd_services()?
        .into_iter()
        .map(|(name, chroot)| {
            let mut params = main_values.clone();
            for (svc, k, v) in &overrides {
                if *svc == name {
                    params.insert(k.clone(), v.clone());
                }
            }
            Service {
                name,
                chroot,
                params,
            }
        })
        .collect();
    let main = Service {
        name: "main.cf".into(),
        chroot: false,
        params: main_values,
    };
    Ok((main, services))
}

type SaslSetups = (
    BTreeMap<String, SaslFacts>,
    BTreeMap<String, (PathBuf, SocketState)>,
);

/// What each service's `smtpd_sasl_path` names: a libsasl application
/// config (cyrus) or an auth socket under `queue_directory` (dovecot).
fn gather_sasl_setups(config_dir: &Path, main: &Service, services: &[Service]) -> SaslSetups {
    let queue = PathBuf::from(main.get("queue_directory"));
    let override_path = std::env::var(SASL_PATH_ENV).ok();
    let mut sasl = BTreeMap::new();
    let mut sockets = BTreeMap::new();
    for s in services.iter().chain([main]) {
        let sp = s.sasl_path().to_string();
        match s.sasl_type() {
            "cyrus" if !sasl.contains_key(&sp) => {
                let dirs = sasl_search_dirs(
                    config_dir,
                    s.get("cyrus_sasl_config_path"),
                    override_path.as_deref(),
                );
                let facts = gather_sasl(&sp, dirs);
                sasl.insert(sp, facts);
            }
            "dovecot" => {
                let state = socket_state(&queue, &sp);
                sockets.insert(sp, state);
            }
            _ => {}
        }
    }
    (sasl, sockets)
}

/// A Dovecot-protocol `smtpd_sasl_path`: TCP, or a socket path relative
/// to `queue_directory`.
fn socket_state(queue: &Path, sasl_path: &str) -> (PathBuf, SocketState) {
    if sasl_path.starts_with("inet:") {
        return (PathBuf::from(sasl_path), SocketState::Tcp);
    }
    let path = queue.join(sasl_path);
    let state = match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => SocketState::Socket,
        Ok(_) => SocketState::NotSocket,
        Err(_) => SocketState::Missing,
    };
    (path, state)
}

/// The chroot copy: its files, content, whether it is the store under a
/// second name, and whether Postfix's user opens it.
fn gather_copy(store: &Path, c: &Path, opts: &OpenOptions, mail_owner: &str) -> CopyFacts {
    let data = file_facts(c);
    let present = data.is_some_and(|x| x.kind == Kind::File);
    let content = if present {
        read_content(c, opts)
    } else {
        Err(StoreError::NotFound(c.to_path_buf()))
    };
    CopyFacts {
        path: c.to_path_buf(),
        data,
        lock: file_facts(&lock_path(c)),
        hard_link: present && publish::same_file(store, c),
        maps: if content.is_ok() {
            map_users(c)
        } else {
            MapUsers::default()
        },
        content,
        probe: present.then(|| probe::probe(c, mail_owner)),
    }
}

/// Collect every fact the checks need.
pub fn gather(store: &Path, opts: &OpenOptions, deploy: Option<&Deployment>) -> Facts {
    let store_facts = gather_store(store, opts);
    let postfix = match deploy {
        Some(d) => match gather_postfix(d, store, opts, store_facts.content.is_ok()) {
            Ok(p) => PostfixState::Found(Box::new(p)),
            Err(e) => PostfixState::Failed(e),
        },
        None => match Postfix::detect(None).and_then(|pf| pf.get("mail_owner")) {
            Err(PostfixError::NoPostconf) => PostfixState::NotInstalled,
            Err(e) => PostfixState::Failed(e),
            Ok(_) => PostfixState::Failed(PostfixError::NoIntegration),
        },
    };
    let hostname = host::default_realm()
        .map(|h| String::from_utf8_lossy(&h).into_owned())
        .unwrap_or_default();
    Facts {
        store: store_facts,
        postfix,
        libsasl: gather_libsasl(),
        hostname,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_dirs() {
        let d = sasl_search_dirs(Path::new("/etc/postfix"), "", Some("/a:/b"));
        assert_eq!(
            d,
            vec![PathBuf::from("/etc/postfix/sasl"), "/a".into(), "/b".into()]
        );
        let d = sasl_search_dirs(Path::new("/etc/postfix"), "/etc/postfix/sasl:/c", None);
        assert_eq!(d, vec![PathBuf::from("/etc/postfix/sasl"), "/c".into()]);
    }

    #[test]
    fn plugin_database_library() {
        assert_eq!(
            classify_plugin(b"\x7fELF...libdb-5.3.so\0db_create"),
            DbFormat::BerkeleyDb
        );
        assert_eq!(
            classify_plugin(b"liblmdb.so.0\0mdb_env_open"),
            DbFormat::Lmdb
        );
        assert_eq!(classify_plugin(b"libgdbm.so.6\0gdbm_open"), DbFormat::Gdbm);
        assert_eq!(classify_plugin(b"nothing"), DbFormat::Unknown);
    }
}
