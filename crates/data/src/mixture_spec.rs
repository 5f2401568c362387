//! Mixtures as people write them: a mixture file (JSON or TOML), Megatron's blend string
//! (`"0.7 web 0.2 code 0.1 books"`), or the list the Python package passes; each is a
//! [`MixtureSpec`], opened into a [`Mixture`] in one place.
//!
//! A mixture file:
//!
//! ```toml
//! split = "969,30,1"            # optional: Megatron's train,valid,test ratios, by document
//!
//! [[sources]]
//! path = "web/*.bin"            # a source: a path, glob or directory, or a list of them
//! weight = 0.7                  # relative: weights are normalised
//! name = "web"                  # optional: defaults to the path
//!
//! [[sources]]
//! path = ["code/a.bin", "code/b.bin"]
//! weight = 0.3
//!
//! [[schedule]]                  # optional: new weights from a global step on
//! step = 1000
//! weights = { web = 0.5, "code/a.bin code/b.bin" = 0.5 }   # by name, or a list in order
//! ```
//!
//! The same in JSON: `{"split": …, "sources": [{"path": …, "weight": …}], "schedule": […]}`.
//! Relative paths are read from the file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::mixture::{schedule_step_error, Mixture, Part, Split, Subset, Weights};
use crate::{DataError, FileFormat, OpenOptions, TokenDataset};

/// Largest mixture file read (its sources are paths and weights: a few KiB in practice).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// One source of a mixture as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub name: String,
    /// The entries of the source (each a file, prefix, glob or directory).
    pub paths: Vec<PathBuf>,
    /// The weight as written (kept exact, see [`Weights::parse`]).
    pub weight: String,
}

/// A mixture as written, not yet opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MixtureSpec {
    pub sources: Vec<SourceSpec>,
    /// New weights (one per source, in order) from a global step on.
    pub schedule: Vec<(u64, Vec<String>)>,
    pub split: Option<String>,
}

/// A number as JSON or TOML gives it, or as a string (for weights written exactly).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Number {
    /// The shortest decimal that reads back as the value: what was written, for a weight
    /// such as 0.7 (JSON and TOML give a double).
    fn text(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => format!("{f}"),
            Self::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSource {
    path: OneOrMany,
    weight: Number,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileWeights {
    List(Vec<Number>),
    ByName(BTreeMap<String, Number>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChange {
    step: u64,
    weights: FileWeights,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    sources: Vec<FileSource>,
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    schedule: Vec<FileChange>,
}

impl MixtureSpec {
    /// Whether `path` names a mixture file (`.json` or `.toml`; no dataset format uses them).
    pub fn is_file(path: &Path) -> bool {
        matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "toml")
        )
    }

    /// Reads a mixture file. Refused with the file's name: a file that does not parse, a
    /// source without a path or weight, an unknown key, a schedule naming an unknown source.
    pub fn from_file(path: &Path) -> Result<Self, DataError> {
        let bad = |why: String| DataError::invalid(path, FileFormat::Mixture, why);
        let bytes = osml_sys::file::read_bounded(path, MAX_FILE_BYTES)
            .map_err(|e| DataError::io(path, e))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        let file: File = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?,
            _ => serde_json::from_str(text).map_err(|e| bad(e.to_string()))?,
        };
        let dir = path.parent().unwrap_or(Path::new(""));
        let sources: Vec<SourceSpec> = file
            .sources
            .into_iter()
            .map(|s| {
                let paths: Vec<PathBuf> = match s.path {
                    OneOrMany::One(p) => vec![p],
                    OneOrMany::Many(v) => v,
                }
                .into_iter()
                .map(|p| if p.is_absolute() { p } else { dir.join(p) })
                .collect();
                SourceSpec {
                    name: s.name.unwrap_or_else(|| written_name(&paths, dir)),
                    paths,
                    weight: s.weight.text(),
                }
            })
            .collect();
        if sources.is_empty() {
            return Err(bad("its sources list is empty".into()));
        }
        if let Some(s) = sources.iter().find(|s| s.paths.is_empty()) {
            return Err(bad(format!("source {} has an empty path list", s.name)));
        }
        let mut schedule = Vec::with_capacity(file.schedule.len());
        for c in file.schedule {
            // Checked here too, before any dataset is opened, to name the file.
            if let Some(why) = schedule_step_error(schedule.last().map(|(s, _)| *s), c.step) {
                return Err(bad(why));
            }
            let weights = match c.weights {
                FileWeights::List(v) => v.iter().map(Number::text).collect(),
                FileWeights::ByName(mut by) => {
                    let mut out = Vec::with_capacity(sources.len());
                    for s in &sources {
                        let w = by.remove(&s.name).ok_or_else(|| {
                            bad(format!(
                                "the schedule at step {} gives no weight for source {:?}",
                                c.step, s.name
                            ))
                        })?;
                        out.push(w.text());
                    }
                    if let Some(extra) = by.keys().next() {
                        return Err(bad(format!(
                            "the schedule at step {} names {extra:?}, which is not a source (sources: {})",
                            c.step,
                            sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                    out
                }
            };
            schedule.push((c.step, weights));
        }
        Ok(Self {
            sources,
            schedule,
            split: file.split,
        })
    }

    /// The mixture one source entry names, if it names one: a mixture file, or a blend
    /// string that is not also a path. `None`: the entries are one source.
    pub fn detect(entries: &[PathBuf]) -> Result<Option<Self>, DataError> {
        let [one] = entries else {
            return Ok(None);
        };
        if Self::is_file(one) {
            return Self::from_file(one).map(Some);
        }
        match one.to_str() {
            Some(text)
                if Self::looks_like_megatron(text) && std::fs::symlink_metadata(one).is_err() =>
            {
                Self::from_megatron(text).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Whether `text` reads as Megatron's blend string: pairs of a weight and a path,
    /// separated by spaces.
    pub fn looks_like_megatron(text: &str) -> bool {
        let words: Vec<&str> = text.split_whitespace().collect();
        words.len() >= 2
            && words.len().is_multiple_of(2)
            && words
                .chunks(2)
                .all(|p| p[0].parse::<f64>().is_ok_and(f64::is_finite))
    }

    /// Megatron's blend string, `"0.7 web 0.2 code 0.1 books"`: each source a weight and a
    /// path (a Megatron prefix, or any osml source).
    pub fn from_megatron(text: &str) -> Result<Self, DataError> {
        if !Self::looks_like_megatron(text) {
            return Err(DataError::Usage(format!(
                "{text:?} is not a blend string: write weight path pairs, such as \"0.7 web 0.3 code\""
            )));
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        Ok(Self {
            sources: words
                .chunks(2)
                .map(|p| SourceSpec {
                    name: p[1].to_owned(),
                    paths: vec![PathBuf::from(p[1])],
                    weight: p[0].to_owned(),
                })
                .collect(),
            ..Self::default()
        })
    }

    /// Opens every source (with `options`), takes `subset` of each under the split (the
    /// spec's, or `split` when given), and checks the weights.
    pub fn open(
        &self,
        options: &OpenOptions,
        split: Option<&str>,
        subset: Option<Subset>,
    ) -> Result<Mixture, DataError> {
        let split = split
            .or(self.split.as_deref())
            .map(Split::parse)
            .transpose()?;
        if split.is_none() {
            if let Some(s) = subset.filter(|&s| s != Subset::Train) {
                return Err(DataError::Usage(format!(
                    "the {} subset needs a split (such as split=\"969,30,1\")",
                    s.name()
                )));
            }
        }
        let names: Vec<String> = self.sources.iter().map(|s| s.name.clone()).collect();
        let texts: Vec<String> = self.sources.iter().map(|s| s.weight.clone()).collect();
        let weights = Weights::parse(&names, &texts)?;
        let mut parts = Vec::with_capacity(self.sources.len());
        for s in &self.sources {
            let dataset = Arc::new(TokenDataset::open_source(&s.paths, options)?);
            parts.push(match &split {
                Some(sp) => Part::split(&s.name, dataset, sp, subset.unwrap_or(Subset::Train))?,
                None => Part::whole(&s.name, dataset),
            });
        }
        let mut mixture = Mixture::new(parts, weights)?;
        for (step, texts) in &self.schedule {
            let w = Weights::parse(&names, texts)
                .map_err(|e| DataError::Usage(format!("the weights at step {step}: {e}")))?;
            mixture.change_at_step(*step, w)?;
        }
        Ok(mixture)
    }
}

/// A source's name when none is given: its paths as written (relative to the file).
fn written_name(paths: &[PathBuf], dir: &Path) -> String {
    paths
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megatron_strings_are_pairs_of_weight_and_path() {
        let m = MixtureSpec::from_megatron("0.7 web 0.2 code 0.1 books").unwrap();
        let got: Vec<(&str, &str)> = m
            .sources
            .iter()
            .map(|s| (s.weight.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(got, [("0.7", "web"), ("0.2", "code"), ("0.1", "books")]);
        assert!(!MixtureSpec::looks_like_megatron("web code"));
        assert!(!MixtureSpec::looks_like_megatron("data/train.bin"));
        assert!(!MixtureSpec::looks_like_megatron("0.5 web 0.5"));
    }

    #[test]
    fn files_parse_in_json_and_toml_with_paths_from_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("mix.toml");
        std::fs::write(
            &toml_path,
            "split = \"98,2\"\n[[sources]]\npath = \"web/*.bin\"\nweight = 0.7\nname = \"web\"\n\
             [[sources]]\npath = [\"c1.bin\", \"c2.bin\"]\nweight = 3\n\
             [[schedule]]\nstep = 100\nweights = { web = 0.5, \"c1.bin c2.bin\" = 0.5 }\n",
        )
        .unwrap();
        let t = MixtureSpec::from_file(&toml_path).unwrap();
        assert_eq!(t.split.as_deref(), Some("98,2"));
        assert_eq!(t.sources[0].paths, [dir.path().join("web/*.bin")]);
        assert_eq!(
            (t.sources[1].name.as_str(), t.sources[1].weight.as_str()),
            ("c1.bin c2.bin", "3")
        );
        assert_eq!(
            t.schedule,
            [(100, vec!["0.5".to_owned(), "0.5".to_owned()])]
        );
        let json_path = dir.path().join("mix.json");
        std::fs::write(
            &json_path,
            r#"{"sources": [{"path": "web/*.bin", "weight": 0.7, "name": "web"},
                            {"path": ["c1.bin", "c2.bin"], "weight": "3"}],
                "split": "98,2", "schedule": [{"step": 100, "weights": [0.5, 0.5]}]}"#,
        )
        .unwrap();
        assert_eq!(MixtureSpec::from_file(&json_path).unwrap(), t);
    }

    #[test]
    fn bad_files_name_the_file_and_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text, want) in [
            ("a.json", "{\"sources\": [", "EOF"),
            ("b.json", r#"{"sources": [{"path": "x"}]}"#, "weight"),
            (
                "c.json",
                r#"{"sources": [], "split": "1"}"#,
                "sources list is empty",
            ),
            (
                "d.toml",
                "[[sources]]\npath = \"x\"\nweight = 1\ncolour = 2\n",
                "colour",
            ),
            (
                "e.json",
                r#"{"sources": [{"path": "x", "weight": 1}], "schedule": [{"step": 5, "weights": {"y": 1}}]}"#,
                "no weight for source \"x\"",
            ),
            (
                "f.json",
                r#"{"sources": [{"path": "x", "weight": 1}], "schedule": [{"step": 9, "weights": [1]}, {"step": 3, "weights": [2]}]}"#,
                "step 3 follows step 9",
            ),
            (
                "g.json",
                r#"{"sources": [{"path": "x", "weight": 1}], "schedule": [{"step": 0, "weights": [1]}]}"#,
                "start after 0",
            ),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            let e = MixtureSpec::from_file(&p).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains("not a valid mixture"), "{e}");
            assert!(e.contains(want), "{name}: {e}");
        }
    }
}
