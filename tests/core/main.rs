//! Self-contained tests of the library (property tests, mechanisms on a store): no system
//! tool, cargo's default harness.

#[path = "../common/mod.rs"]
mod common;

mod mech_props;
mod mech_store;
mod properties;
