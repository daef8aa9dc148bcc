//! Cross-check of the server mechanisms against a second, independent
//! client implementation: Python's `hmac`/`hashlib`/`base64`, written from
//! the RFCs, answering the challenges our server makes.
use crate::common;
use std::io::Write;
use std::process::{Command, Stdio};

use sasldb::mech::{self, Credentials, Exchange, Reply, Secrets, ServerConfig};
use sasldb::secret::{ScramHash, ScramVerifier};
use sasldb::store::{Account, StoreError};

const CLIENT: &str = r#"
import base64, hashlib, hmac, sys, json
req = json.loads(sys.stdin.read())
mech, user, pw = req["mech"], req["user"].encode(), req["password"].encode()
b64 = lambda b: base64.b64encode(b).decode()
unb64 = lambda s: base64.b64decode(s)
step = req["step"]
if mech == "CRAM-MD5":
    ch = unb64(req["challenge"])
    print(b64(user + b" " + hmac.new(pw, ch, hashlib.md5).hexdigest().encode()))
elif mech == "DIGEST-MD5":
    ch = unb64(req["challenge"]).decode()
    d = dict(kv.split("=", 1) for kv in ch.split(","))
    realm, nonce = d["realm"].strip('"'), d["nonce"].strip('"')
    cnonce, nc, qop, uri = "pyCnonce0123", "00000001", "auth", req["digest_uri"]
    H = lambda b: hashlib.md5(b).digest()
    HEX = lambda b: hashlib.md5(b).hexdigest()
    a1 = H(user + b":" + realm.encode() + b":" + pw) + (":%s:%s" % (nonce, cnonce)).encode()
    a2 = ("AUTHENTICATE:" + uri).encode()
    resp = HEX((HEX(a1) + ":%s:%s:%s:%s:" % (nonce, nc, cnonce, qop) + HEX(a2)).encode())
    rsp = HEX((HEX(a1) + ":%s:%s:%s:%s:" % (nonce, nc, cnonce, qop) + HEX((":" + uri).encode())).encode())
    out = 'charset=utf-8,username="%s",realm="%s",nonce="%s",nc=%s,cnonce="%s",digest-uri="%s",response=%s,qop=auth' % (
        user.decode(), realm, nonce, nc, cnonce, uri, resp)
    print(b64(out.encode()))
    print(rsp)
elif mech.startswith("SCRAM-"):
    h = {"SCRAM-SHA-1": hashlib.sha1, "SCRAM-SHA-256": hashlib.sha256}[mech]
    cnonce = "pyClientNonce42"
    bare = "n=%s,r=%s" % (user.decode().replace("=", "=3D").replace(",", "=2C"), cnonce)
    if step == "first":
        print(b64(("n,," + bare).encode()))
    else:
        sf = unb64(req["challenge"]).decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        salt, it, nonce = unb64(attrs["s"]), int(attrs["i"]), attrs["r"]
        assert nonce.startswith(cnonce)
        salted = hashlib.pbkdf2_hmac(h().name, pw, salt, it)
        ck = hmac.new(salted, b"Client Key", h).digest()
        sk = h(ck).digest()
        without = "c=biws,r=" + nonce
        am = (bare + "," + sf + "," + without).encode()
        sig = hmac.new(sk, am, h).digest()
        proof = bytes(a ^ b for a, b in zip(ck, sig))
        print(b64((without + ",p=" + b64(proof)).encode()))
        server_key = hmac.new(salted, b"Server Key", h).digest()
        print("v=" + b64(hmac.new(server_key, am, h).digest()))
"#;

fn python(req: &serde_json::Value) -> Vec<String> {
    common::need("/usr/bin/python3", "python3");
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (Debian python3)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(req.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(str::to_string)
        .collect()
}

struct Table {
    account: Account,
    secrets: Secrets,
}

impl Credentials for Table {
    fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
        Ok((*a == self.account).then(|| self.secrets.clone()))
    }
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new("smtp", "mx.example.org", b"example.org").expect("config");
    c.scram_iterations = 4096;
    c
}

fn cleartext(user: &str, pw: &str) -> Table {
    Table {
        account: Account::new(user, "example.org"),
        secrets: Secrets {
            user_password: Some(pw.as_bytes().to_vec()),
            ..Secrets::default()
        },
    }
}

fn b64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

/// Run one exchange with the Python client; returns success and what the
/// server proved (DIGEST rspauth / SCRAM v=) matched the client's view.
fn exchange(mech_name: &str, creds: &Table, user: &str, client_pw: &str) -> bool {
    let cfg = config();
    let mut ex = Exchange::new(mech::new_mechanism(mech_name, &cfg).expect("mechanism"));
    let req = |step: &str, challenge: &str| {
        serde_json::json!({"mech": mech_name, "user": user, "password": client_pw,
            "step": step, "challenge": challenge, "digest_uri": "smtp/mx.example.org"})
    };
    match mech_name {
        "CRAM-MD5" => {
            let Reply::Challenge(c) = ex.start(None, creds) else {
                panic!("no challenge")
            };
            let out = python(&req("", &c));
            matches!(ex.feed(out[0].as_bytes(), creds), Reply::Success(..))
        }
        "DIGEST-MD5" => {
            let Reply::Challenge(c) = ex.start(None, creds) else {
                panic!("no challenge")
            };
            let out = python(&req("", &c));
            match ex.feed(out[0].as_bytes(), creds) {
                Reply::Challenge(rsp) => {
                    let rsp = String::from_utf8(b64_decode(&rsp)).expect("utf8");
                    assert_eq!(rsp, format!("rspauth={}", out[1]), "server proof");
                    matches!(ex.feed(b"", creds), Reply::Success(..))
                }
                _ => false,
            }
        }
        _ => {
            let first = python(&req("first", ""));
            let Reply::Challenge(sf) = ex.start(Some(first[0].as_bytes()), creds) else {
                panic!("no server-first")
            };
            let out = python(&req("final", &sf));
            match ex.feed(out[0].as_bytes(), creds) {
                Reply::Success(_, Some(v)) => {
                    let v = String::from_utf8(b64_decode(&v)).expect("utf8");
                    assert_eq!(v, out[1], "server signature");
                    true
                }
                _ => false,
            }
        }
    }
}

fn python_clients_authenticate_against_cleartext_secrets() {
    for mech_name in ["CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"] {
        let creds = cleartext("alice", "pässwörd with spaces");
        assert!(
            exchange(mech_name, &creds, "alice", "pässwörd with spaces"),
            "{mech_name} refused the right password"
        );
        assert!(
            !exchange(mech_name, &creds, "alice", "pässwörd with space"),
            "{mech_name} accepted a wrong password"
        );
        assert!(
            !exchange(mech_name, &creds, "mallory", "pässwörd with spaces"),
            "{mech_name} accepted an unknown user"
        );
    }
}

fn python_scram_against_stored_verifiers() {
    for (name, hash) in [
        ("SCRAM-SHA-1", ScramHash::Sha1),
        ("SCRAM-SHA-256", ScramHash::Sha256),
    ] {
        let creds = Table {
            account: Account::new("bob", "example.org"),
            secrets: Secrets {
                verifiers: vec![ScramVerifier::generate(hash, b"s3cr=t,x", 4096).expect("rng")],
                ..Secrets::default()
            },
        };
        assert!(exchange(name, &creds, "bob", "s3cr=t,x"), "{name}");
        assert!(!exchange(name, &creds, "bob", "s3cr=t,y"), "{name}");
        // The user name with SCRAM escapes, resolved in the default realm.
        assert!(
            exchange(name, &creds, "bob@example.org", "s3cr=t,x"),
            "{name}"
        );
    }
}

crate::tests!(
    python_clients_authenticate_against_cleartext_secrets,
    python_scram_against_stored_verifiers,
);
