//! hwloc's expected `lstopo` output for the real `/proc` + `/sys` dumps in
//! `tests/fixtures/hwloc/`, read as an independent oracle.
//!
//! Each `NAME.test` there names a `source:` tarball and a `target:` (`lstopo -v`
//! text in a `.console`, `lstopo --of xml` in a `.xml`), with optional `options:`
//! and `env:` lines. [`cases`] gives the primary test of each tarball,
//! [`all_tests`] every test, and [`oracle`] reads a target into the counts that
//! matter: packages, NUMA nodes, cores, PUs, L3 caches and each node's CPUs.
//!
//! The oracle counts what hwloc shows, which is the topology seen from inside
//! the dump's cgroup/cpuset: CPUs and NUMA nodes outside it are hidden (listed
//! in the `N processors not represented in topology` trailer, or missing from
//! the XML `cpuset`), unless the test ran `lstopo --disallowed`, whose lines then
//! end in ` (disallowed)`. A package, core or L3 cache counts only when at least
//! one shown PU is below it: a package whose CPUs are all disallowed but whose
//! memory is allowed still appears in hwloc's output, as a CPU-less object.
//!
//! ```ignore
//! let dir = hwloc_oracle::fixtures_dir();
//! for case in hwloc_oracle::cases(&dir) {
//!     let oracle = hwloc_oracle::oracle(&case.target);
//!     assert_eq!(oracle.pus, oracle.pus_allowed.len());
//! }
//! ```
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// `tests/fixtures/hwloc/` of the repository, seen from this crate.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hwloc")
}

/// One hwloc test: a dump and the `lstopo` output expected from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The tarball's stem, e.g. `16amd64-8n2c`, shared by every test of that
    /// tarball. The tarball's top directory is not always named so
    /// (`20s390-2g6s4c.tar.bz2` holds `20s390-2g2g2s4co/`).
    pub name: String,
    /// The `.test` file's stem, e.g. `16amd64-8n2c-cpusets-disallowed`; equal to
    /// `name` for the primary test.
    pub test: String,
    pub tarball: PathBuf,
    pub target: PathBuf,
    /// The `options:` line as written; empty means hwloc's default, `-v -`.
    pub options: String,
    /// The `env:` lines as written, in shell syntax (`export` lines included).
    pub env: Vec<String>,
}

impl Case {
    /// The `NAME=value` assignments of the `env:` lines, surrounding quotes
    /// removed; the `export NAME` lines add nothing.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|line| {
                let (name, value) = line.split_once('=')?;
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                Some((name.trim().to_owned(), value.to_owned()))
            })
            .collect()
    }
}

/// One case per tarball: the `.test` whose target has the tarball's stem,
/// sorted by name.
pub fn cases(dir: &Path) -> Vec<Case> {
    let mut cases: Vec<Case> = all_tests(dir)
        .into_iter()
        .filter(|case| stem(&case.target) == case.name)
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Every `.test` in `dir`, variants included, sorted by test name.
///
/// # Panics
///
/// If `dir` or a `.test` file cannot be read, or a `.test` lacks `source:` or
/// `target:`.
pub fn all_tests(dir: &Path) -> Vec<Case> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut tests: Vec<Case> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "test"))
        .map(|path| parse_test(dir, &path))
        .collect();
    tests.sort_by(|a, b| a.test.cmp(&b.test));
    tests
}

/// Parses a `.test` file: `key: value` lines, `#` comments (format in
/// `README.upstream`).
fn parse_test(dir: &Path, path: &Path) -> Case {
    let text = read_text(path);
    let (mut source, mut target) = (None, None);
    let (mut options, mut env) = (String::new(), Vec::new());
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "source" => source = Some(value),
            "target" => target = Some(value),
            "options" => options = value,
            "env" => env.push(value),
            _ => {}
        }
    }
    let source = source.unwrap_or_else(|| panic!("{}: no `source:` line", path.display()));
    let target = target.unwrap_or_else(|| panic!("{}: no `target:` line", path.display()));
    Case {
        name: stem(Path::new(&source)),
        test: stem(path),
        tarball: dir.join(source),
        target: dir.join(target),
        options,
        env,
    }
}

/// A file name without its fixture extension (`.tar.bz2`, `.console`, ...).
fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    [".tar.bz2", ".console", ".xml", ".test"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name)
        .to_owned()
}

fn read_text(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What `lstopo` shows for a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oracle {
    /// Packages with at least one shown PU.
    pub packages: usize,
    /// Every NUMA node shown, CPU-less ones included (and disallowed ones under
    /// `--disallowed`).
    pub numa_nodes: usize,
    /// Cores with at least one shown PU; 0 where the options filter cores out
    /// (`--filter all:structure`) or the machine reports none.
    pub cores: usize,
    /// Every PU shown: the allowed ones, plus the disallowed ones under
    /// `--disallowed`.
    pub pus: usize,
    /// L3 caches with at least one shown PU.
    pub l3_caches: usize,
    /// OS indexes (P#) of the PUs hwloc shows as allowed, ascending.
    pub pus_allowed: Vec<usize>,
    /// For each NUMA node OS index (P#): the OS indexes of the allowed PUs local
    /// to it, ascending (empty for CPU-less nodes).
    pub numa_cpus: BTreeMap<usize, Vec<usize>>,
    /// OS indexes of the NUMA nodes not marked disallowed, ascending.
    pub numa_allowed: Vec<usize>,
    /// PUs the kernel lists (hwloc's complete cpuset) that are not shown:
    /// offline ones, and disallowed ones unless `--disallowed`.
    pub pus_hidden: Vec<usize>,
}

/// Reads a `.console` or `.xml` target.
///
/// # Panics
///
/// If the file cannot be read, has another extension, or holds something that
/// is not `lstopo` output.
pub fn oracle(target: &Path) -> Oracle {
    let text = read_text(target);
    let (tree, pus_hidden) = match target.extension().and_then(|ext| ext.to_str()) {
        Some("console") => parse_console(&text).unwrap_or_else(|line| {
            panic!("{}: not an lstopo object line: {line:?}", target.display())
        }),
        Some("xml") => parse_xml(&text),
        _ => panic!("{}: neither .console nor .xml", target.display()),
    };
    tree.summarise(pus_hidden)
}

/// hwloc's bitmap format: comma-separated 32-bit hex words, most significant
/// first, e.g. `0x00000001,0xffffffff` for 0-32; an empty word is zero
/// (`0xfc000000,,,,,,,0x0`).
///
/// # Panics
///
/// On a word that is not hex, and on hwloc's infinite sets (`0xf...f`).
pub fn parse_bitmap(text: &str) -> Vec<usize> {
    let mut bits = Vec::new();
    for (k, word) in text.trim().split(',').rev().enumerate() {
        let word = word.trim().trim_start_matches("0x");
        if word.is_empty() {
            continue;
        }
        let value = u32::from_str_radix(word, 16)
            .unwrap_or_else(|e| panic!("bitmap {text:?}: word {word:?}: {e}"));
        bits.extend(
            (0..32)
                .filter(|b| (value >> b) & 1 == 1)
                .map(|b| 32 * k + b),
        );
    }
    bits.sort_unstable();
    bits
}

/// One object of the topology tree.
struct Obj {
    kind: String,
    os_index: Option<usize>,
    disallowed: bool,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The topology as `lstopo` printed it, objects in an arena.
#[derive(Default)]
struct Tree {
    objs: Vec<Obj>,
}

impl Tree {
    fn push(&mut self, parent: Option<usize>, kind: String, os_index: Option<usize>) -> usize {
        let id = self.objs.len();
        self.objs.push(Obj {
            kind,
            os_index,
            disallowed: false,
            parent,
            children: Vec::new(),
        });
        if let Some(parent) = parent {
            self.objs[parent].children.push(id);
        }
        id
    }

    /// `id` and everything below it.
    fn subtree(&self, id: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            out.push(id);
            todo.extend(&self.objs[id].children);
        }
        out
    }

    fn os_index(&self, id: usize) -> usize {
        let obj = &self.objs[id];
        obj.os_index
            .unwrap_or_else(|| panic!("a {} without an OS index (P#)", obj.kind))
    }

    fn allowed_pus_below(&self, id: usize) -> Vec<usize> {
        let mut pus: Vec<usize> = self
            .subtree(id)
            .into_iter()
            .filter(|&i| self.objs[i].kind == "PU" && !self.objs[i].disallowed)
            .map(|i| self.os_index(i))
            .collect();
        pus.sort_unstable();
        pus
    }

    fn summarise(&self, mut pus_hidden: Vec<usize>) -> Oracle {
        let mut has_pu = vec![false; self.objs.len()];
        for (id, obj) in self
            .objs
            .iter()
            .enumerate()
            .filter(|(_, obj)| obj.kind == "PU")
        {
            has_pu[id] = true;
            let mut up = obj.parent;
            while let Some(p) = up.filter(|&p| !has_pu[p]) {
                has_pu[p] = true;
                up = self.objs[p].parent;
            }
        }
        let count = |kind: &str| {
            self.objs
                .iter()
                .zip(&has_pu)
                .filter(|(obj, has)| **has && obj.kind == kind)
                .count()
        };
        let mut numa_cpus = BTreeMap::new();
        let mut numa_allowed = Vec::new();
        for (id, node) in self
            .objs
            .iter()
            .enumerate()
            .filter(|(_, obj)| obj.kind == "NUMANode")
        {
            let os = self.os_index(id);
            // hwloc 2 hangs a node (possibly behind memory-side caches) off the
            // object whose CPUs are local to it; hwloc 1 made it their parent.
            let mut local = id;
            while !has_pu[local]
                && matches!(self.objs[local].kind.as_str(), "NUMANode" | "MemCache")
            {
                local = self.objs[local]
                    .parent
                    .expect("a NUMA node below the machine");
            }
            let previous = numa_cpus.insert(os, self.allowed_pus_below(local));
            assert!(previous.is_none(), "NUMA node P#{os} shown twice");
            if !node.disallowed {
                numa_allowed.push(os);
            }
        }
        numa_allowed.sort_unstable();
        pus_hidden.sort_unstable();
        Oracle {
            packages: count("Package"),
            numa_nodes: numa_cpus.len(),
            cores: count("Core"),
            pus: self.objs.iter().filter(|obj| obj.kind == "PU").count(),
            l3_caches: count("L3Cache"),
            pus_allowed: self.allowed_pus_below(0),
            numa_cpus,
            numa_allowed,
            pus_hidden,
        }
    }
}

/// Parses `lstopo -v` text: one object per line, nested by indentation, the
/// machine alone in column 0, then a summary (`depth 0: ...`) also starting in
/// column 0. Returns the offending line on failure.
fn parse_console(text: &str) -> Result<(Tree, Vec<usize>), String> {
    let mut tree = Tree::default();
    let mut stack: Vec<(usize, usize)> = Vec::new(); // (indent, object)
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent == 0 && number > 0 {
            break;
        }
        let (kind, os_index) = parse_object_line(&line[indent..]).ok_or_else(|| line.to_owned())?;
        while stack.last().is_some_and(|&(above, _)| above >= indent) {
            stack.pop();
        }
        let id = tree.push(stack.last().map(|&(_, id)| id), kind, os_index);
        tree.objs[id].disallowed = line.trim_end().ends_with(" (disallowed)");
        stack.push((indent, id));
    }
    if tree.objs.is_empty() {
        return Err(String::new());
    }
    let hidden = text
        .lines()
        .find_map(|line| {
            let (count, set) = line.split_once(" processors not represented in topology: ")?;
            count
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| parse_bitmap(set))
        })
        .unwrap_or_default();
    Ok((tree, hidden))
}

/// `Package L#0 (P#0 ...)`, `Group0(Book) L#1 (P#0)`, `NUMANode(GPUMemory) L#1
/// (P#253 ...)`, `OSDev[Storage](Removable Media Device) L#0 (...) "sr0"`,
/// `Core L#0`, `Machine (P#0 ...)`: the type and the OS index.
fn parse_object_line(line: &str) -> Option<(String, Option<usize>)> {
    if !line.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let kind_len = line
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(line.len());
    let kind = &line[..kind_len];
    let mut rest = &line[kind_len..];
    if rest.starts_with('[') {
        rest = &rest[rest.find(']')? + 1..];
    }
    if rest.starts_with('(') {
        rest = &rest[rest.find(')')? + 1..];
    }
    if let Some(after) = rest.strip_prefix(" L#") {
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        if digits == 0 {
            return None;
        }
        rest = &after[digits..];
    } else if kind != "Machine" {
        return None;
    }
    if !(rest.is_empty() || rest.starts_with(" (")) {
        return None;
    }
    let os_index = rest.strip_prefix(" (P#").and_then(|r| {
        let digits = r.find(|c: char| !c.is_ascii_digit())?;
        r[..digits].parse().ok()
    });
    Some((kind.to_owned(), os_index))
}

/// Parses `lstopo --of xml`: nested `<object type=... os_index=... cpuset=...>`
/// elements. hwloc exports only what it shows, so the root's `allowed_cpuset`
/// and `allowed_nodeset` mark disallowed objects, and the root's
/// `complete_cpuset` minus its `cpuset` are the hidden PUs.
fn parse_xml(text: &str) -> (Tree, Vec<usize>) {
    let mut tree = Tree::default();
    let mut stack: Vec<usize> = Vec::new();
    let mut root_attrs = Vec::new();
    let mut pos = 0;
    while let Some(offset) = text[pos..].find('<') {
        let start = pos + offset + 1;
        let end = start + tag_len(&text[start..]);
        let tag = &text[start..end];
        pos = (end + 1).min(text.len());
        if tag == "/object" {
            stack.pop().expect("</object> closes an <object>");
            continue;
        }
        let Some(body) = tag
            .strip_prefix("object")
            .filter(|b| b.starts_with(char::is_whitespace))
        else {
            continue;
        };
        let self_closing = body.ends_with('/');
        let attrs = parse_attrs(body.trim_end_matches('/'));
        let os_index = attr(&attrs, "os_index")
            .map(|v| v.parse().unwrap_or_else(|e| panic!("os_index {v:?}: {e}")));
        if stack.is_empty() {
            assert!(tree.objs.is_empty(), "an XML topology has one root object");
            root_attrs.clone_from(&attrs);
        }
        let id = tree.push(stack.last().copied(), xml_kind(&attrs), os_index);
        if !self_closing {
            stack.push(id);
        }
    }
    assert!(stack.is_empty(), "unclosed <object>");
    let set = |name| attr(&root_attrs, name).map(parse_bitmap);
    for (kind, allowed) in [
        ("PU", set("allowed_cpuset")),
        ("NUMANode", set("allowed_nodeset")),
    ] {
        let Some(allowed) = allowed else { continue };
        for obj in tree.objs.iter_mut().filter(|obj| obj.kind == kind) {
            obj.disallowed = obj
                .os_index
                .is_some_and(|os| allowed.binary_search(&os).is_err());
        }
    }
    let shown = set("cpuset").unwrap_or_default();
    let hidden = set("complete_cpuset")
        .unwrap_or_default()
        .into_iter()
        .filter(|pu| shown.binary_search(pu).is_err())
        .collect();
    (tree, hidden)
}

/// The length of a tag's text up to its closing `>`, skipping quoted values.
fn tag_len(text: &str) -> usize {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return i,
            _ => {}
        }
    }
    text.len()
}

/// `name="value"` pairs.
fn parse_attrs(mut body: &str) -> Vec<(&str, &str)> {
    let mut attrs = Vec::new();
    while let Some((name, rest)) = body.split_once('=') {
        let Some(rest) = rest.trim_start().strip_prefix('"') else {
            break;
        };
        let Some((value, rest)) = rest.split_once('"') else {
            break;
        };
        attrs.push((name.trim(), value));
        body = rest;
    }
    attrs
}

fn attr<'a>(attrs: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The object type, with hwloc 1.x names (`Socket`, `Cache` with a `depth`)
/// mapped to hwloc 2's.
fn xml_kind(attrs: &[(&str, &str)]) -> String {
    match attr(attrs, "type").expect("an <object> has a type") {
        "Socket" => "Package".to_owned(),
        "Cache" => {
            let level = attr(attrs, "depth").unwrap_or("?");
            let flavour = match attr(attrs, "cache_type") {
                Some("1") => "d",
                Some("2") => "i",
                _ => "",
            };
            format!("L{level}{flavour}Cache")
        }
        kind => kind.to_owned(),
    }
}
