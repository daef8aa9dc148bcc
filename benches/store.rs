//! Library benchmarks (criterion): the key codec, one password set through
//! `admin::{prepare, apply}` (one LMDB write transaction, synced, as one
//! `saslpasswd` call does), listing a 100 000-user store and applying a
//! 100 000-operation batch. Every store lives in a scratch directory.
//!
//! `cargo bench --bench store` runs them; `cargo bench --bench store -- list`
//! picks some. The command-line comparison with Cyrus is
//! `benches/bench-cli.sh`.

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sasldb::admin::{self, Op, Prepared};
use sasldb::cli::listusers::{self, Format};
use sasldb::secret::{DEFAULT_ITERATIONS, SetPolicy};
use sasldb::store::{Account, OpenOptions, Store, key};

const REALM: &[u8] = b"bench.example";
const USERS: usize = 100_000;

/// What plain `saslpasswd -c` stores: userPassword only.
fn plain_policy() -> SetPolicy {
    SetPolicy {
        plaintext: true,
        scram: None,
        iterations: DEFAULT_ITERATIONS,
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sasldb-bench.")
        .tempdir()
        .expect("temp dir")
}

fn open(dir: &Path) -> Store {
    Store::open_write(&dir.join("sasldb2"), &OpenOptions::default()).expect("open store")
}

fn set_ops(n: usize) -> Vec<Op> {
    (1..=n)
        .map(|i| Op::Set {
            account: Account::new(format!("user{i}"), REALM),
            password: format!("pw-{i}-secret").into_bytes(),
        })
        .collect()
}

fn prepared(n: usize) -> Vec<Prepared> {
    admin::prepare(&plain_policy(), set_ops(n), &mut |_| {}).expect("prepare")
}

fn key_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("key");
    g.bench_function("encode", |b| {
        b.iter(|| {
            key::encode(
                black_box(b"alice"),
                black_box(b"mail.example.org"),
                black_box(b"userPassword"),
            )
            .unwrap()
        })
    });
    let k = key::encode(b"alice", b"mail.example.org", b"userPassword").unwrap();
    g.bench_function("decode", |b| b.iter(|| key::decode(black_box(&k)).unwrap()));
    g.finish();
}

fn set_one(c: &mut Criterion) {
    let policy = plain_policy();
    let mut g = c.benchmark_group("set_one_user");
    // The store is open already: prepare + one synced write transaction.
    let dir = scratch();
    let store = open(dir.path());
    let mut i = 0u64;
    g.bench_function("prepare_apply", |b| {
        b.iter(|| {
            i += 1;
            let op = Op::Set {
                account: Account::new("alice", REALM),
                password: format!("secret-{i}").into_bytes(),
            };
            let p = admin::prepare(&policy, vec![op], &mut |_| {}).unwrap();
            admin::apply(&store, &policy, &p, &mut |_| {}).unwrap()
        })
    });
    drop(store);
    // What one saslpasswd call does after start-up: open, set, close.
    g.bench_function("open_prepare_apply_close", |b| {
        b.iter(|| {
            i += 1;
            let store = open(dir.path());
            let op = Op::Set {
                account: Account::new("alice", REALM),
                password: format!("secret-{i}").into_bytes(),
            };
            let p = admin::prepare(&policy, vec![op], &mut |_| {}).unwrap();
            admin::apply(&store, &policy, &p, &mut |_| {}).unwrap()
        })
    });
    // The same on a store that does not exist yet (the first user).
    g.bench_function("create_store_and_first_user", |b| {
        b.iter_batched(
            scratch,
            |dir| {
                let store = open(dir.path());
                let op = Op::Set {
                    account: Account::new("alice", REALM),
                    password: b"secret".to_vec(),
                };
                let p = admin::prepare(&policy, vec![op], &mut |_| {}).unwrap();
                admin::apply(&store, &policy, &p, &mut |_| {}).unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn list_100k(c: &mut Criterion) {
    let dir = scratch();
    let store = open(dir.path());
    admin::apply(&store, &plain_policy(), &prepared(USERS), &mut |_| {}).expect("fill store");
    let mut g = c.benchmark_group("list_100k_users");
    g.sample_size(10);
    g.throughput(Throughput::Elements(USERS as u64));
    for (name, format) in [("compat", Format::Compat), ("accounts_view", Format::Json)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let l = listusers::list(&store, None, format).unwrap();
                assert_eq!(l.malformed, 0);
                l
            })
        });
    }
    g.finish();
}

fn batch_100k(c: &mut Criterion) {
    let policy = plain_policy();
    let mut g = c.benchmark_group("batch_100k_ops");
    g.sample_size(10);
    g.throughput(Throughput::Elements(USERS as u64));
    g.bench_function("prepare", |b| {
        b.iter_batched(
            || set_ops(USERS),
            |ops| admin::prepare(&policy, ops, &mut |_| {}).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let ops = prepared(USERS);
    g.bench_function("apply_fresh_store", |b| {
        b.iter_batched(
            scratch,
            |dir| {
                let store = open(dir.path());
                let s = admin::apply(&store, &policy, &ops, &mut |_| {}).unwrap();
                assert_eq!(s.created, USERS);
                (store, dir)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, key_codec, set_one, list_100k, batch_100k);
criterion_main!(benches);
