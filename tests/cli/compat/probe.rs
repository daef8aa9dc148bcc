//! tests/data/probe-cli.sh, run for both tool sets and diffed.

use super::*;

// ------------------------------------------------------------------------------------------
// tests/data/probe-cli.sh, both tool sets, diffed
// ------------------------------------------------------------------------------------------

/// The probe's output cut at its `=== label` lines.
fn probe_blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = vec![("(header)".to_string(), Vec::new())];
    for l in text.lines() {
        if let Some(label) = l.strip_prefix("=== ") {
            blocks.push((label.to_string(), Vec::new()));
        } else {
            blocks.last_mut().expect("block").1.push(l.to_string());
        }
    }
    blocks
}

fn probe_cli_cyrus_vs_ours() {
    let probe = data("probe-cli.sh");
    let s = Scratch::new();
    // Both tool sets by bare name through PATH: glibc's getopt messages show argv[0] as
    // given, and the probe only normalises the base name.
    let bin_dir = Path::new(SASLPASSWD).parent().expect("bin dir");
    let run = |toolset: &str, pw: &str, lu: &str, dump: &str| -> String {
        let o = Command::new("bash")
            .arg(&probe)
            .arg(toolset)
            .env("SASLPASSWD", pw)
            .env("SASLDBLISTUSERS", lu)
            .env("DUMP", dump)
            .env("SASL_CONF_PATH", s.conf_dir())
            .env("LC_ALL", "C")
            .env("PATH", format!("{}:{PATH_ENV}", bin_dir.display()))
            .output()
            .expect("probe-cli.sh");
        assert!(o.status.success(), "probe-cli.sh {toolset}: {}", stderr(&o));
        stdout(&o)
    };
    let cyrus = run("cyrus", "saslpasswd2", "sasldblistusers2", "db5.3_dump -p");
    let ours = run("ours", "saslpasswd", "sasldblistusers", "mdb_dump -p -n");
    let (cb, ob) = (probe_blocks(&cyrus), probe_blocks(&ours));
    let labels = |b: &[(String, Vec<String>)]| b.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&ob), labels(&cb), "same probes in the same order");
    assert!(cb.len() > 25, "probe ran: {cyrus}");
    for ((label, c), (_, o)) in cb.iter().zip(&ob) {
        let ctx = format!(
            "probe {label}\n--- cyrus:\n{}\n--- ours:\n{}",
            c.join("\n"),
            o.join("\n")
        );
        match label.as_str() {
            "(header)" => {
                let c: Vec<String> = c
                    .iter()
                    .map(|l| l.replace("toolset=cyrus", "toolset=ours"))
                    .collect();
                assert_eq!(o, &c, "{ctx}");
            }
            // DELIBERATE: a detail line naming the file before Cyrus's failure line.
            "list-missing-file" | "db-in-missing-dir" => {
                let (prefix, last) = if label == "list-missing-file" {
                    ("err: LISTUSERS: TMP/sasldb2: ", "err: listusers failed")
                } else {
                    (
                        "err: SASLPASSWD: TMP/nodir/sasldb2: ",
                        "err: SASLPASSWD: generic failure",
                    )
                };
                let i = o
                    .iter()
                    .position(|l| l.starts_with(prefix))
                    .unwrap_or_else(|| panic!("{ctx}"));
                assert_eq!(o.get(i + 1).map(String::as_str), Some(last), "{ctx}");
                let mut without = o.clone();
                without.remove(i);
                assert_eq!(&without, c, "{ctx}");
            }
            // DELIBERATE: `-n` stored a SCRAM-SHA-256 authPassword for nflag.
            "list-all" | "list-after-delete" => {
                let extra: Vec<&String> = o.iter().filter(|l| !c.contains(l)).collect();
                let mut want = vec!["out: nflag@lab.example: authPassword".to_string()];
                if label == "list-all" {
                    let rec = extra
                        .iter()
                        .find(|l| l.starts_with("rec: "))
                        .unwrap_or_else(|| panic!("{ctx}"));
                    assert!(
                        rec.starts_with("rec:  nflag\\00lab.example\\00authPassword\t <")
                            && rec.contains("SCRAM-SH"),
                        "{ctx}"
                    );
                    want.push(rec.to_string());
                }
                assert_eq!(extra, want.iter().collect::<Vec<_>>(), "{ctx}");
                let common: Vec<&String> = o.iter().filter(|l| c.contains(l)).collect();
                assert_eq!(common, c.iter().collect::<Vec<_>>(), "{ctx}");
            }
            // DELIBERATE: -v's last line names our package.
            "version" => {
                let (cl, ol) = (c.last().expect("line"), o.last().expect("line"));
                assert_eq!(cl, &format!("err: {CYRUS_VERSION_LINE}"), "{ctx}");
                assert!(
                    ol.starts_with(&format!("err: {}", our_version_prefix())),
                    "{ctx}"
                );
                assert_eq!(o[..o.len() - 1], c[..c.len() - 1], "{ctx}");
            }
            _ => assert_eq!(o, c, "{ctx}"),
        }
    }
}

crate::tests!(probe_cli_cyrus_vs_ours,);
