//! cgroup files: `/proc/self/cgroup` and the limit files of v1 and v2 (cgroups(7),
//! `Documentation/admin-guide/cgroup-v2.rst`).

use crate::ParseError;

/// One line of `/proc/self/cgroup`: `hierarchy-id:controllers:path`. The v2 line has id 0 and
/// no controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub hierarchy: u32,
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_proc_self_cgroup(text: &str) -> Result<Vec<Membership>, ParseError> {
    let rows: Vec<Membership> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?.parse().ok()?;
            let controllers = parts
                .next()?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let path = parts.next()?.to_owned();
            Some(Membership {
                hierarchy,
                controllers,
                path,
            })
        })
        .collect();
    if rows.is_empty() {
        return Err(ParseError::new(
            "cgroup",
            text,
            "no `id:controllers:path` lines",
        ));
    }
    Ok(rows)
}

/// v1 reports "no limit" as a page-rounded `LONG_MAX` (9223372036854771712); anything this
/// large is no limit.
const NO_LIMIT_FLOOR: u64 = 1 << 62;

/// A byte limit: `max` (v2) or a huge number (v1) is `None`, meaning no limit.
pub fn parse_limit(text: &str) -> Result<Option<u64>, ParseError> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    // v1 prints -1 for "no limit" in some files (cpu.cfs_quota_us).
    if t == "-1" {
        return Ok(None);
    }
    let v: u64 = t
        .parse()
        .map_err(|_| ParseError::new("cgroup limit", text, "not a number or `max`"))?;
    Ok((v < NO_LIMIT_FLOOR).then_some(v))
}

/// v2 `cpu.max`: `$MAX $PERIOD`, `max` meaning no quota. Returns `(quota, period)` in µs.
pub fn parse_cpu_max(text: &str) -> Result<Option<(u64, u64)>, ParseError> {
    let mut w = text.split_whitespace();
    let quota = w
        .next()
        .ok_or_else(|| ParseError::new("cpu.max", text, "empty"))?;
    let period: u64 = w
        .next()
        .unwrap_or("100000")
        .parse()
        .map_err(|_| ParseError::new("cpu.max", text, "period is not a number"))?;
    if quota == "max" {
        return Ok(None);
    }
    let quota: u64 = quota
        .parse()
        .map_err(|_| ParseError::new("cpu.max", text, "quota is not a number"))?;
    if period == 0 {
        return Err(ParseError::new("cpu.max", text, "period is zero"));
    }
    Ok(Some((quota, period)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_memberships() {
        let t =
            "11:memory:/\n7:cpuset:/jjh\n1:name=systemd:/user.slice\n0::/system.slice/x.service\n";
        let m = parse_proc_self_cgroup(t).unwrap();
        assert_eq!(m[1].controllers, ["cpuset"]);
        assert_eq!(m[1].path, "/jjh");
        assert_eq!(m[3].hierarchy, 0);
        assert!(m[3].controllers.is_empty());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("max\n").unwrap(), None);
        assert_eq!(parse_limit("9223372036854771712\n").unwrap(), None);
        assert_eq!(parse_limit("536870912").unwrap(), Some(512 << 20));
        assert_eq!(parse_cpu_max("max 100000\n").unwrap(), None);
        assert_eq!(
            parse_cpu_max("200000 100000").unwrap(),
            Some((200_000, 100_000))
        );
        assert!(parse_cpu_max("1 0").is_err());
    }
}
