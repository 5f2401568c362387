//! `/proc/<pid>/status`: here only `Cpus_allowed_list`, the affinity recorded in a capture.

use crate::{CpuList, ParseError};

pub fn cpus_allowed_list(text: &str) -> Result<CpuList, ParseError> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or_else(|| ParseError::new("status", text, "no Cpus_allowed_list line"))?;
    CpuList::parse(line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn real_contents() {
        let t = "Name:\tosml\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n";
        assert_eq!(super::cpus_allowed_list(t).unwrap().ids(), &[0, 1]);
    }
}
