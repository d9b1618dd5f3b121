//! The lab's SSH keys: one ed25519 host key per simulated host and one client
//! key pair for the operator, all derived from the world's seed so that a lab
//! started again with the same seed keeps its `known_hosts` valid.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{PrivateKey, PublicKey};

/// An ed25519 key derived from the seed and a label (the host name, or `client`).
pub fn derived_key(seed: u64, label: &str, comment: &str) -> PrivateKey {
    let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(label.as_bytes()));
    let secret: [u8; 32] = rng.random();
    let keypair = Ed25519Keypair::from_seed(&secret);
    PrivateKey::new(KeypairData::Ed25519(keypair), comment).expect("an ed25519 key pair is always valid")
}

/// The operator's key pair.
pub fn client_key(seed: u64) -> PrivateKey {
    derived_key(seed, "client", "hvmigrate-lab-operator")
}

/// The key a host presents.
pub fn host_key(seed: u64, host: &str) -> PrivateKey {
    derived_key(seed, &format!("host:{host}"), &format!("root@{host}"))
}

/// The key a host presents after `generation` real reinstalls (0: none).
pub fn host_key_of_generation(seed: u64, host: &str, generation: u32) -> PrivateKey {
    match generation {
        0 => host_key(seed, host),
        n => derived_key(seed, &format!("host:{host}:reinstall-{n}"), &format!("root@{host}")),
    }
}

/// The key a host presents after "its key changed" (a fault).
pub fn changed_host_key(seed: u64, host: &str) -> PrivateKey {
    derived_key(seed, &format!("changed-host:{host}"), &format!("root@{host}"))
}

/// `ssh-ed25519 AAAA... comment`, as in `authorized_keys` and `.pub` files.
pub fn public_line(key: &PublicKey) -> String {
    key.to_openssh().expect("an ed25519 public key always encodes")
}

/// The private key in OpenSSH format (for `id_ed25519`).
pub fn private_pem(key: &PrivateKey) -> String {
    key.to_openssh(LineEnding::LF).expect("an unencrypted ed25519 key always encodes").to_string()
}

/// Whether an `authorized_keys` line names this key (type and base64 blob; options and comment ignored).
pub fn line_matches(line: &str, key: &PublicKey) -> bool {
    let wanted = public_line(key);
    let mut wanted_words = wanted.split_whitespace();
    let (Some(kind), Some(blob)) = (wanted_words.next(), wanted_words.next()) else { return false };
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).any(|pair| pair[0] == kind && pair[1] == blob)
}

/// 64-bit FNV-1a: a stable hash for deriving seeds from names.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        let a = host_key(1, "hv001.lab.example.org");
        let b = host_key(1, "hv001.lab.example.org");
        let c = host_key(1, "hv002.lab.example.org");
        assert_eq!(public_line(a.public_key()), public_line(b.public_key()));
        assert_ne!(public_line(a.public_key()), public_line(c.public_key()));
        assert_ne!(public_line(a.public_key()), public_line(changed_host_key(1, "hv001.lab.example.org").public_key()));
    }

    #[test]
    fn authorized_line_matching_ignores_comment_and_options() {
        let key = client_key(7);
        let line = public_line(key.public_key());
        let blob = line.split_whitespace().nth(1).unwrap();
        assert!(line_matches(&line, key.public_key()));
        assert!(line_matches(&format!("no-pty ssh-ed25519 {blob} someone@else"), key.public_key()));
        assert!(!line_matches(&public_line(client_key(8).public_key()), key.public_key()));
        assert!(private_pem(&key).starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    }
}
