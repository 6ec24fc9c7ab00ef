//! The replica-exchange schedules a config can choose between with its `swapScheme` key.

use serde::{Deserialize, Serialize};

/// How the sampler schedules replica-exchange (swap) attempts between adjacent temperatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwapScheme {
    /// Stateline's scheme: every `swapInterval` steps, attempt a swap between each adjacent
    /// pair, from the hottest pair down to the coldest. Config value `"classic"`.
    Classic,
    /// Non-reversible parallel tempering (Syed et al. 2021, "deterministic even-odd"): swap
    /// attempts alternate between the even and the odd adjacent pairs, so a state that moves up
    /// or down the ladder keeps moving in that direction instead of diffusing; round trips take
    /// O(N) instead of O(N²) attempts for N temperatures. Config value `"nonreversible"`.
    NonReversible,
}

impl SwapScheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: [SwapScheme; 2] = [SwapScheme::Classic, SwapScheme::NonReversible];

    /// The scheme's name in a config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::NonReversible => "nonreversible",
        }
    }
}
