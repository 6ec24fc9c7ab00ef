//! When a posterior summary should not be trusted yet, in words a user can act on.
//!
//! The thresholds are those of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021): a
//! rank-normalised split-R-hat above 1.01 means the chains have not mixed, and a bulk effective
//! sample size below 400 is too few for reliable estimates and for R-hat itself.

/// R-hat above which chains have not converged to one distribution.
pub const RHAT_LIMIT: f64 = 1.01;

/// Bulk effective sample size below which estimates are unreliable.
pub const ESS_BULK_LIMIT: f64 = 400.0;

/// One parameter's diagnostics, as [`warnings`] reads them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diagnosed<'a> {
    /// The parameter's name (`x0`, …).
    pub name: &'a str,
    /// Its rank-normalised split-R-hat (NaN when undefined).
    pub rhat: f64,
    /// Its bulk effective sample size (NaN when undefined).
    pub ess_bulk: f64,
}

/// The warnings a set of parameters' diagnostics call for, one sentence each; empty when
/// every parameter passes.
pub fn warnings(parameters: &[Diagnosed<'_>]) -> Vec<String> {
    let list = |failing: Vec<String>| {
        let shown = failing.len().min(8);
        let more = failing.len() - shown;
        let mut text = failing[..shown].join(", ");
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text
    };
    let mut warnings = Vec::new();
    let undefined: Vec<String> = parameters
        .iter()
        .filter(|p| p.rhat.is_nan() || p.ess_bulk.is_nan())
        .map(|p| p.name.to_owned())
        .collect();
    if !undefined.is_empty() {
        warnings.push(format!(
            "R-hat and ESS are undefined for {} (fewer than 4 draws per chain after the burn-in, \
             or non-finite values): nothing says these chains converged",
            list(undefined)
        ));
    }
    let high_rhat: Vec<String> = parameters
        .iter()
        .filter(|p| p.rhat > RHAT_LIMIT)
        .map(|p| format!("{} ({:.3})", p.name, p.rhat))
        .collect();
    if !high_rhat.is_empty() {
        warnings.push(format!(
            "R-hat above {RHAT_LIMIT} for {}: the chains have not converged to one \
             distribution; run longer (nSamplesTotal), start the burn-in later (burnIn), or look \
             for modes the chains do not move between",
            list(high_rhat)
        ));
    }
    let low_ess: Vec<String> = parameters
        .iter()
        .filter(|p| p.ess_bulk < ESS_BULK_LIMIT)
        .map(|p| format!("{} ({:.0})", p.name, p.ess_bulk))
        .collect();
    if !low_ess.is_empty() {
        warnings.push(format!(
            "bulk ESS below {ESS_BULK_LIMIT:.0} for {}: too few effective draws for reliable \
             estimates; run longer (nSamplesTotal)",
            list(low_ess)
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failing_check_is_one_warning_naming_its_parameters() {
        let ok = Diagnosed {
            name: "x0",
            rhat: 1.001,
            ess_bulk: 5000.0,
        };
        assert!(warnings(&[ok]).is_empty());
        let slow = Diagnosed {
            name: "x1",
            rhat: 1.034,
            ess_bulk: 210.0,
        };
        let also = Diagnosed {
            name: "x2",
            rhat: 1.02,
            ess_bulk: 900.0,
        };
        let nan = Diagnosed {
            name: "x3",
            rhat: f64::NAN,
            ess_bulk: f64::NAN,
        };
        let found = warnings(&[ok, slow, also, nan]);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("R-hat and ESS are undefined for x3 "));
        assert!(found[1].starts_with("R-hat above 1.01 for x1 (1.034), x2 (1.020):"));
        assert!(found[2].starts_with("bulk ESS below 400 for x1 (210):"));
    }
}
