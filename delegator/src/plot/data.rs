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
    /// The chains whose first row has `beta` = 1.
    pub chains: Vec<ColdChain>,
}

impl ColdChains {
    /// Reads the cold chains of the run in `dir`; only the first row of the others is read.
    pub fn read(dir: &Path) -> anyhow::Result<ColdChains> {
        let files = chain_files(dir)?;
        let mut cold = Vec::new();
        let mut n_dims = None;
        for (index, path) in files {
            let head = read_chain_head(&path)?;
            if head.first_beta != Some(1.0) {
                continue;
            }
            match n_dims {
                None => n_dims = Some(head.n_dims),
                Some(n) if n != head.n_dims => bail!(
                    "{}: has {} dimensions but the cold chain before it has {n}",
                    path.display(),
                    head.n_dims
                ),
                Some(_) => {}
            }
            cold.push((index, path));
        }
        let Some(n_dims) = n_dims else {
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
        Ok(ColdChains { n_dims, chains })
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
