//! `/proc/modules`: loaded kernel modules (lsmod(8) reads the same file).

use crate::ParseError;

/// Names of the loaded modules, sorted.
pub fn parse(text: &str) -> Result<Vec<String>, ParseError> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    #[test]
    fn real_contents() {
        let t = "nvidia_peermem 16384 0 - Live 0x0000000000000000 (OE)\n\
                 nvidia 56455168 2 nvidia_uvm,nvidia_peermem, Live 0x0000000000000000 (POE)\n";
        assert_eq!(super::parse(t).unwrap(), ["nvidia", "nvidia_peermem"]);
    }
}
