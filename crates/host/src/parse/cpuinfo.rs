//! `/proc/cpuinfo`: the CPU model, and package/core ids where sysfs topology is missing.

use crate::ParseError;

/// What osml takes from cpuinfo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// The model name of the first processor (x86 `model name`, POWER `cpu`, Arm `Processor`
    /// or `CPU part`, s390 `processor 0` description).
    pub model: Option<String>,
    /// `(processor, physical id, core id)` per processor block, where the ids are present.
    pub processors: Vec<(usize, Option<usize>, Option<usize>)>,
}

/// Parses cpuinfo: blocks separated by blank lines, `key : value` lines.
pub fn parse(text: &str) -> Result<CpuInfo, ParseError> {
    let mut info = CpuInfo::default();
    let mut cur: Option<(usize, Option<usize>, Option<usize>)> = None;
    let mut fallback_model = None;
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let Some(p) = cur.take() {
                info.processors.push(p);
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => cur = value.parse().ok().map(|n| (n, None, None)),
            "physical id" => {
                if let Some(c) = cur.as_mut() {
                    c.1 = value.parse().ok();
                }
            }
            "core id" => {
                if let Some(c) = cur.as_mut() {
                    c.2 = value.parse().ok();
                }
            }
            "model name" | "cpu" | "Processor" | "cpu model"
                if info.model.is_none() && !value.is_empty() =>
            {
                info.model = Some(value.to_owned());
            }
            "CPU part" | "vendor_id" if fallback_model.is_none() => {
                fallback_model = Some(value.to_owned());
            }
            _ => {}
        }
    }
    if info.model.is_none() {
        info.model = fallback_model;
    }
    if info.processors.is_empty() && info.model.is_none() {
        return Err(ParseError::new("cpuinfo", text, "no processor entries"));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    #[test]
    fn x86() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\
                    physical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n\
                    physical id\t: 0\ncore id\t\t: 1\n";
        let c = super::parse(text).unwrap();
        assert_eq!(c.model.as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(
            c.processors,
            vec![(0, Some(0), Some(0)), (1, Some(0), Some(1))]
        );
    }

    #[test]
    fn power9() {
        let text =
            "processor\t: 0\ncpu\t\t: POWER9, altivec supported\nclock\t\t: 3800.000000MHz\n\n\
                    timebase\t: 512000000\nplatform\t: PowerNV\n";
        let c = super::parse(text).unwrap();
        assert_eq!(c.model.as_deref(), Some("POWER9, altivec supported"));
        assert_eq!(c.processors.len(), 1);
    }
}
