//! `blurgate calibrate`: embeds an organisation's own photos of known people and measures how
//! well recognition separates them ([`crate::matching::tail`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Deserialize;

use super::engine::Engine;
use super::plan;
use crate::embed::Embedding;
use crate::error::{Error, Result};
use crate::matching::tail::{evaluate, Calibration};
use crate::media::{self, DecodeLimits};
use crate::storage::Location;

/// Pairs of photos and whether they show the same person.
#[derive(Debug, Default)]
pub struct PairSet {
    pub pairs: Vec<(PathBuf, PathBuf, bool)>,
}

impl PairSet {
    /// Every pair within and across groups (each group one person).
    pub fn from_groups(groups: &[Vec<PathBuf>]) -> PairSet {
        let all: Vec<(usize, &PathBuf)> =
            groups.iter().enumerate().flat_map(|(g, files)| files.iter().map(move |f| (g, f))).collect();
        let mut pairs = Vec::new();
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                pairs.push((all[i].1.clone(), all[j].1.clone(), all[i].0 == all[j].0));
            }
        }
        PairSet { pairs }
    }

    /// One sub-folder per person.
    pub fn from_identities(dir: &Path) -> Result<PairSet> {
        let mut groups = Vec::new();
        for person in Location::from(dir).subfolders()? {
            let found = plan::walk(&[person], false, None)?;
            groups.push(
                found
                    .files
                    .into_iter()
                    .filter(|f| matches!(f.verdict, plan::Verdict::Check))
                    .filter_map(|f| f.input.local_path().map(Path::to_path_buf))
                    .collect(),
            );
        }
        Ok(PairSet::from_groups(&groups))
    }

    /// `{"components": [["a.jpg", "b.jpg"], ...]}`: each list one person, paths relative to the
    /// JSON file.
    pub fn from_components(json: &Path) -> Result<PairSet> {
        #[derive(Deserialize)]
        struct Components {
            components: Vec<Vec<String>>,
        }
        let text = Location::from(json).read_text()?;
        let c: Components = serde_json::from_str(&text)
            .map_err(|e| Error::PairList { path: json.to_path_buf(), problem: e.to_string() })?;
        let base = json.parent().unwrap_or(Path::new("."));
        let groups: Vec<Vec<PathBuf>> = c.components.iter().map(|g| g.iter().map(|f| base.join(f)).collect()).collect();
        Ok(PairSet::from_groups(&groups))
    }

    /// CSV with a header and columns `file_x,file_y,same` (same: yes/no, true/false, 1/0),
    /// paths relative to the CSV file.
    pub fn from_csv(csv: &Path) -> Result<PairSet> {
        let text = Location::from(csv).read_text()?;
        let base = csv.parent().unwrap_or(Path::new("."));
        let mut pairs = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let bad = || Error::PairList {
                path: csv.to_path_buf(),
                problem: format!("line {}: expected file_x,file_y,yes|no", n + 1),
            };
            let [x, y, same] = cols[..] else { return Err(bad()) };
            let same = match same.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" | "same" => true,
                "no" | "false" | "0" | "different" => false,
                _ => return Err(bad()),
            };
            pairs.push((base.join(x), base.join(y), same));
        }
        Ok(PairSet { pairs })
    }

    fn files(&self) -> BTreeSet<&PathBuf> {
        self.pairs.iter().flat_map(|(a, b, _)| [a, b]).collect()
    }
}

/// Embeds the largest confident face of every photo, then scores the pairs.
pub fn calibrate(engine: &Engine, set: &PairSet, fars: &[f64]) -> Result<Calibration> {
    let files: Vec<&PathBuf> = set.files().into_iter().collect();
    let embedded: Vec<(PathBuf, Option<Embedding>)> =
        files.par_iter().map(|path| Ok(((*path).clone(), embed_one(engine, path)?))).collect::<Result<_>>()?;
    let skipped = embedded.iter().filter(|(_, e)| e.is_none()).map(|(p, _)| p.display().to_string()).collect();
    let by_path: BTreeMap<&PathBuf, &Embedding> =
        embedded.iter().filter_map(|(p, e)| e.as_ref().map(|e| (p, e))).collect();
    let (mut same, mut different) = (Vec::new(), Vec::new());
    for (a, b, is_same) in &set.pairs {
        if let (Some(ea), Some(eb)) = (by_path.get(a), by_path.get(b)) {
            (if *is_same { &mut same } else { &mut different }).push(ea.similarity(eb));
        }
    }
    if same.is_empty() || different.is_empty() {
        return Err(Error::NoPairs);
    }
    Ok(evaluate(files.len(), skipped, &same, &different, fars))
}

fn embed_one(engine: &Engine, path: &Path) -> Result<Option<Embedding>> {
    let Ok(bytes) = Location::from(path).read() else { return Ok(None) };
    let Ok(photo) = media::decode(&bytes, DecodeLimits::default()) else { return Ok(None) };
    let faces = engine.detector().detect(&photo.rgb)?;
    let Some(face) = faces.iter().filter(|d| d.score >= 0.5).max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
    else {
        return Ok(None);
    };
    Ok(engine.embed(&photo.rgb, &[face.landmarks])?.pop())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_make_all_pairs() {
        let p = |s: &str| PathBuf::from(s);
        let set = PairSet::from_groups(&[vec![p("a1"), p("a2")], vec![p("b1")]]);
        assert_eq!(set.pairs.len(), 3);
        assert_eq!(set.pairs.iter().filter(|x| x.2).count(), 1);
    }
}
