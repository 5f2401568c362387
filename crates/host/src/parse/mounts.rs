//! `/proc/self/mounts` (fstab(5) fields; octal escapes such as `\040` for a space).

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: Vec<String>,
}

impl Mount {
    /// The value of a `key=value` mount option.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find_map(|o| o.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// Whether a bare option (`ro`, a cgroup v1 controller name) is present.
    pub fn has_option(&self, name: &str) -> bool {
        self.options.iter().any(|o| o == name)
    }
}

/// Parses the mount table; malformed lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Mount>, ParseError> {
    let mounts: Vec<Mount> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some(Mount {
                source: unescape(f.next()?),
                target: unescape(f.next()?),
                fstype: f.next()?.to_owned(),
                options: f.next()?.split(',').map(str::to_owned).collect(),
            })
        })
        .collect();
    if mounts.is_empty() {
        return Err(ParseError::new("mounts", text, "no mount lines"));
    }
    Ok(mounts)
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct
                .iter()
                .all(|b| (b'0'..=b'3').contains(&oct[0]) && (b'0'..=b'7').contains(b))
            {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a size such as tmpfs's `size=` option: bytes, or with a `k`, `m`, `g` or `t` suffix.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        (i, 't' | 'T') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_contents() {
        let text = "tmpfs /dev/shm tmpfs rw,nosuid,nodev,size=131895552k,nr_inodes=2060868 0 0\n\
                    cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n\
                    /dev/sda1 /mnt/my\\040disk ext4 rw 0 0\n";
        let m = parse(text).unwrap();
        assert_eq!(m[0].target, "/dev/shm");
        assert_eq!(m[0].option("size"), Some("131895552k"));
        assert_eq!(parse_size("131895552k"), Some(131_895_552 * 1024));
        assert!(m[1].has_option("memory"));
        assert_eq!(m[2].target, "/mnt/my disk");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("50%"), None);
        assert_eq!(parse_size(""), None);
    }
}
