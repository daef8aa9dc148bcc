//! What several targets share (not a target itself: `Cargo.toml` lists those).
use sasldb::mech::ServerConfig;

/// A mechanism server for mx.example.org, realm example.org, with cheap
/// SCRAM iterations; `flags` bit 0x80 allows proxy logins, bit 0x40 gives
/// the connection channel binding data.
pub fn server_config(flags: u8) -> ServerConfig {
    ServerConfig {
        service: "smtp".into(),
        hostname: "mx.example.org".into(),
        host_aliases: vec![],
        digest_strict_host: false,
        realm: b"example.org".to_vec(),
        allow_proxy: flags & 0x80 != 0,
        scram_iterations: 16,
        salt_key: [1; 32],
        channel_binding: (flags & 0x40 != 0).then(|| b"cb".to_vec()),
    }
}
