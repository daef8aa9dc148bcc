//! The man pages in `man/` and the shell completions in `completions/` are
//! generated from the command definitions (`sasldb::cli::*::command()`).
//! This test regenerates them in memory and fails when a committed file
//! differs; `SASLDB_REGENERATE=1 cargo test --test cli generated` rewrites them.
//! It also runs the bash completion through a real bash.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap_complete::Shell;

const REGENERATE_VAR: &str = "SASLDB_REGENERATE";
/// The date in the pages' title line (clap_mangen drops an empty date and
/// shifts the other fields); change it with the texts.
const MAN_DATE: &str = "2026-11-29";
const REGENERATE_HINT: &str = "run `SASLDB_REGENERATE=1 cargo test --test cli generated`";

/// The tools: binary name, command definition, the man pages to refer to.
fn tools() -> Vec<(&'static str, clap::Command, &'static [&'static str])> {
    vec![
        (
            "saslpasswd",
            sasldb::cli::saslpasswd::command(),
            &["sasldblistusers(8)", "saslpasswd2(8)", "postconf(1)"],
        ),
        (
            "sasldblistusers",
            sasldb::cli::listusers::command(),
            &["saslpasswd(8)", "sasldblistusers2(8)", "mdb_dump(1)"],
        ),
        (
            "smtpd-auth",
            sasldb::cli::smtpd_auth::command(),
            &["saslpasswd(8)", "postconf(5)", "smtpd(8)"],
        ),
    ]
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- man pages

/// Escape text for a roff text line: backslash, hyphen-minus (so options
/// stay copy-pastable), apostrophe (clap_mangen's preamble defines `Aq`),
/// and a leading control character.
fn roff_escape(line: &str) -> String {
    let mut s = line
        .replace('\\', r"\e")
        .replace('-', r"\-")
        .replace('\'', r"\*(Aq");
    if s.starts_with('.') {
        s.insert_str(0, r"\&");
    }
    s
}

/// One block of an `after_long_help` section.
#[derive(Debug)]
enum Block {
    /// Filled prose (indent 2).
    Prose(Vec<String>),
    /// `* text` at indent 2, continued at a deeper indent.
    Bullet(Vec<String>),
    /// `term   description` at indent 2 (two or more spaces between),
    /// the description continued at a deeper indent.
    Def(String, Vec<String>),
    /// Lines indented deeper than 2 after prose: shown verbatim (commands).
    Code(Vec<String>),
}

/// Split an indent-2 line into a definition term and its description.
fn split_def(text: &str) -> Option<(&str, &str)> {
    let gap = text.find("  ")?;
    let term = &text[..gap];
    let desc = text[gap..].trim_start();
    (gap <= 32 && !desc.is_empty()).then_some((term, desc))
}

/// Render `after_long_help` as man sections. The help text is laid out as
/// `Heading:` lines at column 0 and indented bodies (see `Block`).
fn render_after_help(text: &str) -> String {
    let mut sections: Vec<(String, Vec<Block>)> = Vec::new();
    let mut fresh = true; // next indented line starts a new block
    for line in text.lines() {
        if line.trim().is_empty() {
            fresh = true;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if indent == 0 {
            let title = body.strip_suffix(':').unwrap_or_else(|| {
                panic!(
                    "after_long_help heading must end in ':' (it becomes a man section): {line:?}"
                )
            });
            sections.push((title.to_uppercase(), Vec::new()));
            fresh = true;
            continue;
        }
        let (_, blocks) = sections
            .last_mut()
            .unwrap_or_else(|| panic!("after_long_help must start with a heading: {line:?}"));
        if indent > 2 {
            match blocks.last_mut() {
                Some(Block::Bullet(t) | Block::Def(_, t)) if !fresh => t.push(body.to_string()),
                Some(Block::Code(c)) if !fresh => c.push(line[4.min(indent)..].to_string()),
                Some(Block::Prose(_)) if !fresh => {
                    blocks.push(Block::Code(vec![line[4.min(indent)..].to_string()]))
                }
                _ => panic!("indented line belongs to nothing: {line:?}"),
            }
        } else if let Some(item) = body.strip_prefix("* ") {
            blocks.push(Block::Bullet(vec![item.to_string()]));
        } else if let Some((term, desc)) = split_def(body) {
            blocks.push(Block::Def(term.to_string(), vec![desc.to_string()]));
        } else {
            match blocks.last_mut() {
                Some(Block::Prose(p)) if !fresh => p.push(body.to_string()),
                _ => blocks.push(Block::Prose(vec![body.to_string()])),
            }
        }
        fresh = false;
    }
    let mut out = String::new();
    for (title, blocks) in sections {
        let title = roff_escape(&title);
        if title.contains(' ') {
            out.push_str(&format!(".SH \"{title}\"\n"));
        } else {
            out.push_str(&format!(".SH {title}\n"));
        }
        for block in blocks {
            match block {
                Block::Prose(lines) => {
                    out.push_str(".PP\n");
                    for l in lines {
                        out.push_str(&roff_escape(&l));
                        out.push('\n');
                    }
                }
                Block::Bullet(lines) => {
                    out.push_str(".IP \\(bu 2\n");
                    for l in lines {
                        out.push_str(&roff_escape(&l));
                        out.push('\n');
                    }
                }
                Block::Def(term, lines) => {
                    out.push_str(&format!(".TP\n\\fB{}\\fR\n", roff_escape(&term)));
                    for l in lines {
                        out.push_str(&roff_escape(&l));
                        out.push('\n');
                    }
                }
                Block::Code(lines) => {
                    out.push_str(".RS 4\n.nf\n");
                    for l in lines {
                        out.push_str(&roff_escape(&l));
                        out.push('\n');
                    }
                    out.push_str(".fi\n.RE\n");
                }
            }
        }
    }
    out
}

fn man_page(cmd: &clap::Command, see_also: &[&str]) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let after = cmd
        .get_after_long_help()
        .map(|s| s.to_string())
        .unwrap_or_default();
    // clap_mangen renders title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS;
    // the after-help is rendered here as proper sections instead of its
    // single filled "EXTRA" section, and VERSION comes last.
    let base = cmd
        .clone()
        .after_long_help(None::<&str>)
        .version(None::<&str>);
    let man = clap_mangen::Man::new(base)
        .title(name.to_uppercase())
        .section("8")
        .date(MAN_DATE)
        .source(format!("sasldb {version}"))
        .manual("System Administration");
    let mut buf = Vec::new();
    man.render(&mut buf).expect("render man page");
    let page = String::from_utf8(buf).expect("utf-8 man page");
    // No hyphenation and ragged right: option and property names such as
    // --password-fd or scram_iteration_counter must not be split or spread.
    let th_end = page.find("\n.SH NAME").expect("title line before NAME");
    let mut page = format!("{}\n.nh\n.ad l{}", &page[..th_end], &page[th_end..]);
    page.push_str(&render_after_help(&after));
    page.push_str(".SH \"SEE ALSO\"\n");
    let refs: Vec<String> = see_also
        .iter()
        .map(|r| {
            let (n, sec) = r.split_once('(').expect("name(section)");
            format!("\\fB{}\\fR({}", roff_escape(n), sec)
        })
        .collect();
    page.push_str(&refs.join(",\n"));
    page.push('\n');
    page.push_str(&format!(".SH VERSION\nsasldb {}\n", roff_escape(&version)));
    page.into_bytes()
}

// ---------------------------------------------------------------- completions

fn completion_path(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Bash => format!("completions/{name}.bash"),
        Shell::Zsh => format!("completions/_{name}"),
        Shell::Fish => format!("completions/{name}.fish"),
        other => panic!("no file name for {other}"),
    }
}

fn completion(shell: Shell, cmd: &clap::Command, name: &str) -> Vec<u8> {
    // Into a Vec: generate() panics when writing to a closed pipe.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd.clone(), name, &mut buf);
    buf
}

/// Every generated file: path relative to the package root, contents.
fn expected() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (name, cmd, see_also) in tools() {
        files.push((format!("man/{name}.8"), man_page(&cmd, see_also)));
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            files.push((completion_path(shell, name), completion(shell, &cmd, name)));
        }
    }
    files
}

/// Write through a temporary file and a rename, so a test reading the file
/// at the same time never sees half of it.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("parent");
    std::fs::create_dir_all(dir).expect("create dir");
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

fn generated_files_are_current() {
    let regenerate = std::env::var_os(REGENERATE_VAR).is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (rel, want) in expected() {
        let path = root().join(&rel);
        let have = std::fs::read(&path).ok();
        if have.as_deref() == Some(&want[..]) {
            continue;
        }
        if regenerate {
            write_atomically(&path, &want);
            eprintln!("rewrote {rel}");
        } else {
            stale.push(if have.is_none() {
                format!("{rel} (missing)")
            } else {
                rel
            });
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are stale or missing: {}; {REGENERATE_HINT}",
        stale.join(", ")
    );
}

fn man_pages_carry_the_after_help_texts() {
    let page = String::from_utf8(man_page(
        &sasldb::cli::saslpasswd::command(),
        &["sasldblistusers(8)"],
    ))
    .unwrap();
    for needle in [
        ".TH SASLPASSWD 8",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH EXAMPLES",
        ".SH FILES",
        r#".SH "EXIT STATUS""#,
        r#".SH "DELIBERATE DIFFERENCES FROM SASLPASSWD2""#,
        r#"saslpasswd \-c \-u "$(postconf \-h myhostname)" alice"#,
        r"\fB/etc/sasldb2\fR",
        r"\fB\-\-batch\fR",
    ] {
        assert!(page.contains(needle), "{needle:?} missing from:\n{page}");
    }
    // Nothing from the help text may be left for roff to read as a request.
    for line in page.lines() {
        assert!(!line.starts_with('\''), "stray control line: {line:?}");
    }
    let page = String::from_utf8(man_page(
        &sasldb::cli::listusers::command(),
        &["saslpasswd(8)"],
    ))
    .unwrap();
    for needle in [
        ".TH SASLDBLISTUSERS 8",
        ".SH EXAMPLES",
        r#".SH "EXIT STATUS""#,
        r#".SH "DELIBERATE DIFFERENCES FROM SASLDBLISTUSERS2""#,
        r"\fB\-\-format\fR",
    ] {
        assert!(page.contains(needle), "{needle:?} missing from:\n{page}");
    }
}

// ---------------------------------------------------------------- bash

fn bash(script: &str) -> std::process::Output {
    Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .current_dir(root())
        .output()
        .expect("run bash (Debian package: bash)")
}

fn bash_completion_files_parse() {
    for (name, _, _) in tools() {
        let file = completion_path(Shell::Bash, name);
        let o = bash(&format!("bash -n {file}"));
        assert!(
            o.status.success(),
            "bash -n {file} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Source the committed completion, fill COMP_WORDS as bash does for the
/// command line `words`, call the function and return COMPREPLY.
fn complete(name: &str, words: &[&str]) -> Vec<String> {
    let file = completion_path(Shell::Bash, name);
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    let cword = words.len() - 1;
    let script = format!(
        r#"set -e
source {file}
complete -p {name} >/dev/null
fn=$(complete -p {name} | sed -n 's/.*-F \([^ ]*\).*/\1/p')
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
"$fn" {name} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = quoted.join(" ")
    );
    let o = bash(&script);
    assert!(
        o.status.success(),
        "completion run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn bash_completes_long_options() {
    assert_eq!(
        complete("saslpasswd", &["saslpasswd", "--bat"]),
        ["--batch"]
    );
    assert_eq!(
        complete("saslpasswd", &["saslpasswd", "-c", "--pass"]),
        ["--password-fd"]
    );
    assert_eq!(
        complete("sasldblistusers", &["sasldblistusers", "--for"]),
        ["--format"]
    );
    // A value from the definition's list of possible values.
    let formats = complete("sasldblistusers", &["sasldblistusers", "--format", ""]);
    assert_eq!(formats, ["compat", "table", "json"]);
}

crate::tests!(
    generated_files_are_current,
    man_pages_carry_the_after_help_texts,
    bash_completion_files_parse,
    bash_completes_long_options,
);
