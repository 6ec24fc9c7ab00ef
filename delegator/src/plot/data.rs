//! Finding and reading the cold chains of an MCMC output folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use ganger_mcmc::output::{read_chain, read_chain_head};

/// One cold chain's samples.
#[derive(Debug)]
pub(crate) struct ColdChain {
    /// Its index: its file is `INDEX.csv`.
    pub index: usize,
    /// `states[dimension][step]`.
    pub states: Vec<Vec<f64>>,
}

impl ColdChain {
    /// Steps in this chain's file.
    pub fn n_steps(&self) -> usize {
        self.states.first().map_or(0, Vec::len)
    }
}

/// The cold chains of a run, all with the same dimensions, in index order.
#[derive(Debug)]
pub(crate) struct ColdChains {
    /// Dimensions of every chain.
    pub n_dims: usize,
    /// Their names, from the chain files' header.
    pub names: Vec<String>,
    /// The chains whose first row has `beta` = 1.
    pub chains: Vec<ColdChain>,
}

impl ColdChains {
    /// Reads the cold chains of the run in `dir`; only the first row of the others is read.
    pub fn read(dir: &Path) -> anyhow::Result<ColdChains> {
        let files = chain_files(dir)?;
        let mut cold = Vec::new();
        let mut names: Option<Vec<String>> = None;
        for (index, path) in files {
            let head = read_chain_head(&path)?;
            if head.first_beta != Some(1.0) {
                continue;
            }
            match &names {
                None => names = Some(head.names),
                Some(n) if *n != head.names => bail!(
                    "{}: its columns are {} but the cold chain before it has {}",
                    path.display(),
                    head.names.join(","),
                    n.join(",")
                ),
                Some(_) => {}
            }
            cold.push((index, path));
        }
        let Some(names) = names else {
            bail!(
                "{}: no cold chain (no chain file whose first row has beta = 1)",
                dir.display()
            );
        };
        // One thread per chain: parsing numbers is the slow part and the files are independent.
        let chains = std::thread::scope(|scope| {
            let readers: Vec<_> = cold
                .iter()
                .map(|(index, path)| {
                    scope.spawn(move || {
                        read_chain(path).map(|states| ColdChain {
                            index: *index,
                            states,
                        })
                    })
                })
                .collect();
            readers
                .into_iter()
                .map(|reader| reader.join().expect("a chain reader panicked"))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(ColdChains {
            n_dims: names.len(),
            names,
            chains,
        })
    }

    /// Keeps only the dimensions `wanted` names, in that order: each a name from the header or,
    /// failing that, a dimension's index (`0` for the first).
    pub fn select(&mut self, wanted: &[String]) -> anyhow::Result<()> {
        let mut picked = Vec::with_capacity(wanted.len());
        for want in wanted {
            let dim = self
                .names
                .iter()
                .position(|name| name == want)
                .or_else(|| want.parse::<usize>().ok().filter(|&d| d < self.n_dims));
            match dim {
                Some(dim) if picked.contains(&dim) => bail!("--dims names {want} twice"),
                Some(dim) => picked.push(dim),
                None => bail!(
                    "--dims: no dimension {want}; the run has {} (or their indices 0 to {})",
                    self.names.join(", "),
                    self.n_dims - 1
                ),
            }
        }
        self.names = picked.iter().map(|&d| self.names[d].clone()).collect();
        self.n_dims = picked.len();
        for chain in &mut self.chains {
            let mut states = std::mem::take(&mut chain.states);
            chain.states = picked
                .iter()
                .map(|&d| std::mem::take(&mut states[d]))
                .collect();
        }
        Ok(())
    }

    /// Steps in the shortest cold chain (a killed run can leave them a row apart).
    pub fn min_steps(&self) -> usize {
        self.chains
            .iter()
            .map(ColdChain::n_steps)
            .min()
            .unwrap_or(0)
    }

    /// Steps in the longest cold chain.
    pub fn max_steps(&self) -> usize {
        self.chains
            .iter()
            .map(ColdChain::n_steps)
            .max()
            .unwrap_or(0)
    }

    /// Dimension `dim` of each chain from step `burn_in` on.
    pub fn after<'a>(&'a self, dim: usize, burn_in: usize) -> impl Iterator<Item = &'a [f64]> + 'a {
        self.chains
            .iter()
            .map(move |chain| chain.states[dim].get(burn_in..).unwrap_or_default())
    }
}

/// The chain files `0.csv`, `1.csv`, … in `dir`, by index; other files are ignored.
fn chain_files(dir: &Path) -> anyhow::Result<Vec<(usize, PathBuf)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the output folder", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("{}: cannot read the output folder", dir.display()))?
            .path();
        let index = path
            .file_name()
            .and_then(|name| name.to_str()?.strip_suffix(".csv")?.parse::<usize>().ok());
        if let Some(index) = index {
            files.push((index, path));
        }
    }
    if files.is_empty() {
        bail!(
            "{}: no chain files (0.csv, 1.csv, …): is this an MCMC output folder?",
            dir.display()
        );
    }
    files.sort();
    Ok(files)
}
