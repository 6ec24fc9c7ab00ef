//! The diagnostics checked against ArviZ and numpy on reference chains, and the inputs on
//! which they are undefined.

// The reference values below come from ArviZ 0.23.4 (with numpy 2.4.6 and scipy 1.17.1,
// installed with `pip install arviz`), an implementation independent of this one. Each case
// draws its chains from an AR(1) recursion driven by a 32-bit LCG, which Python and Rust
// compute bit for bit alike, so the arrays need not be copied. To re-derive the numbers, run
// this with `CASES = [(name, (chains, draws, phi, offsets, seed, discrete)), ...]` taken from
// the table (each row of `expected` is what it prints, in that order):
//
//     import numpy as np, arviz as az
//     from arviz.stats.diagnostics import _rhat, _split_chains, _z_scale
//
//     def gen(chains, draws, phi, offsets, seed, discrete):
//         s, out = seed, np.empty((chains, draws))
//         for c in range(chains):
//             x = 0.0
//             for t in range(draws):
//                 s = (1664525 * s + 1013904223) % 2**32
//                 u = (s >> 8) / 16777216.0
//                 x = phi * x + (u - 0.5)
//                 out[c, t] = np.floor(4.0 * x) if discrete else x + offsets[c]
//         return out
//
//     for name, args in CASES:
//         x = gen(*args)
//         if len(x) > 1:
//             rhat, split = az.rhat(x, method="rank"), az.rhat(x, method="split")
//         else:  # ArviZ's public rhat refuses one chain; its internals compute it
//             s = _split_chains(x)
//             rhat = max(_rhat(_z_scale(s)), _rhat(_z_scale(abs(s - np.median(s)))))
//             split = _rhat(s)
//         print(name, [float(v) for v in [rhat, split, az.ess(x, method="bulk"),
//             az.ess(x, method="tail"), az.ess(x, method="identity"),
//             az.mcse(x, method="mean"), np.mean(x), np.std(x, ddof=1),
//             *np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])]])

use super::autocovariance::mean_autocovariance;
use super::draws::MIN_DRAWS;
use super::*;

/// Relative tolerance against the reference values (with a tiny absolute floor for zeros).
const TOLERANCE: f64 = 1e-6;

/// One reference case: how its chains are generated and what ArviZ computed for them.
struct Case {
    name: &'static str,
    chains: usize,
    draws: usize,
    phi: f64,
    offsets: &'static [f64],
    seed: u32,
    discrete: bool,
    /// From the script above: `az.rhat(x, method="rank")`, `az.rhat(x, method="split")`,
    /// `az.ess(x, method="bulk")`, `az.ess(x, method="tail")`,
    /// `az.ess(x, method="identity")`, `az.mcse(x, method="mean")`, `np.mean(x)`,
    /// `np.std(x, ddof=1)` and `np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])`.
    expected: [f64; 13],
}

// ArviZ 0.23.4 values; see the script at the top of this module.
const CASES: &[Case] = &[
    // Well mixed: independent draws, 4 × 200.
    Case {
        name: "mixed",
        chains: 4,
        draws: 200,
        phi: 0.0,
        offsets: &[0.0, 0.0, 0.0, 0.0],
        seed: 1,
        discrete: false,
        expected: [
            1.0034929070054268,
            1.0041611588927593,
            702.9854484193356,
            770.0323906184279,
            672.2407981318994,
            0.011198459341520427,
            0.008657290786504745,
            0.2903727707760277,
            -0.45728444755077363,
            -0.2323000580072403,
            0.005484908819198608,
            0.25046975910663605,
            0.4652649909257889,
        ],
    },
    // Strongly autocorrelated: AR(1) with phi = 0.95.
    Case {
        name: "sticky",
        chains: 4,
        draws: 200,
        phi: 0.95,
        offsets: &[0.0, 0.0, 0.0, 0.0],
        seed: 2,
        discrete: false,
        expected: [
            1.2788750669422642,
            1.3084567085031593,
            11.50239286836418,
            21.09869786239035,
            16.9601603848057,
            0.285932010327199,
            0.22266064514751022,
            0.9238277136561768,
            -1.2656336054771729,
            -0.4196632687003406,
            0.20070017712674676,
            0.7623304084765873,
            1.946163086606389,
        ],
    },
    // Chains around different means: R-hat far above 1.05.
    Case {
        name: "shifted",
        chains: 4,
        draws: 200,
        phi: 0.5,
        offsets: &[0.0, 0.0, 0.5, 1.0],
        seed: 3,
        discrete: false,
        expected: [
            1.5395162675815643,
            1.602507689476721,
            7.524906709898213,
            55.60930030357523,
            3.333626668503874,
            0.19279011702712806,
            0.35677149604594477,
            0.5127121567291264,
            -0.42914224069635964,
            -0.032760960326789934,
            0.3330782609105412,
            0.7297428790558227,
            1.2564648102146294,
        ],
    },
    // Odd chain length: splitting drops each chain's middle draw.
    Case {
        name: "odd",
        chains: 3,
        draws: 201,
        phi: 0.3,
        offsets: &[0.0, 0.0, 0.0],
        seed: 4,
        discrete: false,
        expected: [
            1.0134957098691775,
            1.012760009358643,
            282.41219854325817,
            423.37726943198294,
            286.06547530859365,
            0.01834745704004441,
            0.007963049201371659,
            0.31237624434290623,
            -0.47101303485328333,
            -0.2604199799216388,
            0.008151063358187688,
            0.2736607537507245,
            0.5169079332301212,
        ],
    },
    // Integer-valued draws: many ties in the ranks and at the quantiles.
    Case {
        name: "ties",
        chains: 4,
        draws: 200,
        phi: 0.7,
        offsets: &[0.0, 0.0, 0.0, 0.0],
        seed: 5,
        discrete: true,
        expected: [
            1.026531792293039,
            1.0263497727964597,
            119.61513295153748,
            210.7299678499286,
            118.72336409241065,
            0.14218444033867927,
            -0.655,
            1.556921644225496,
            -3.0,
            -2.0,
            -1.0,
            0.0,
            2.0,
        ],
    },
    // A single chain (R-hat from ArviZ's internals, see the script).
    Case {
        name: "one_chain",
        chains: 1,
        draws: 150,
        phi: 0.6,
        offsets: &[0.0],
        seed: 6,
        discrete: false,
        expected: [
            1.012731433233188,
            1.012799959258693,
            35.57002370038282,
            67.70267635039534,
            38.08071870143436,
            0.06290132198984423,
            0.03734447593796526,
            0.3793176057980389,
            -0.5535962710042662,
            -0.23746782911235698,
            0.016529835715754754,
            0.30630428731727594,
            0.6460451090926524,
        ],
    },
    // Tiny chains: the split halves have 2 draws, so Geyer's loop never runs.
    Case {
        name: "five",
        chains: 2,
        draws: 5,
        phi: 0.3,
        offsets: &[0.0, 0.0],
        seed: 7,
        discrete: false,
        expected: [
            0.9012144386980897,
            0.7507916457659649,
            7.224719895935548,
            7.224719895935548,
            10.0,
            0.1422315470241364,
            0.008665367702245718,
            0.3823018862722443,
            -0.5179640524715186,
            -0.29284860370010135,
            0.09037500053644179,
            0.32971563548892735,
            0.4300923062652348,
        ],
    },
    // The fewest draws for which the diagnostics are defined.
    Case {
        name: "four",
        chains: 3,
        draws: 4,
        phi: 0.3,
        offsets: &[0.0, 0.0, 0.0],
        seed: 8,
        discrete: false,
        expected: [
            1.190225210564614,
            1.3385167482871652,
            12.9501749525715,
            12.9501749525715,
            12.9501749525715,
            0.10327268265977191,
            -0.0389139783581098,
            0.3716407059942379,
            -0.4977742531895637,
            -0.35262450784444804,
            -0.06328981220722196,
            0.24747882232069968,
            0.4507244093060492,
        ],
    },
];

/// The chains of `case`, exactly as the Python script's `gen` makes them.
fn generate(case: &Case) -> Vec<Vec<f64>> {
    let mut state = case.seed;
    (0..case.chains)
        .map(|c| {
            let mut x = 0.0;
            (0..case.draws)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let u = f64::from(state >> 8) / 16_777_216.0;
                    x = case.phi * x + (u - 0.5);
                    if case.discrete {
                        (4.0 * x).floor()
                    } else {
                        x + case.offsets[c]
                    }
                })
                .collect()
        })
        .collect()
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    let tolerance = TOLERANCE * expected.abs() + 1e-12;
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, ArviZ/numpy gave {expected}"
    );
}

#[test]
fn matches_arviz_and_numpy() {
    for case in CASES {
        let chains = generate(case);
        let chains: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
        let pooled = chains.concat();
        let [rhat, split, bulk, tail, raw, mcse, m, s, q05, q25, q50, q75, q95] = case.expected;
        let name = case.name;
        assert_close(
            rank_normalized_split_rhat(&chains),
            rhat,
            &format!("{name} rhat"),
        );
        assert_close(split_rhat(&chains), split, &format!("{name} split rhat"));
        assert_close(ess_bulk(&chains), bulk, &format!("{name} ess_bulk"));
        assert_close(ess_tail(&chains), tail, &format!("{name} ess_tail"));
        assert_close(ess(&chains), raw, &format!("{name} ess"));
        assert_close(mcse_mean(&chains), mcse, &format!("{name} mcse_mean"));
        assert_close(mean(&pooled), m, &format!("{name} mean"));
        assert_close(sd(&pooled), s, &format!("{name} sd"));
        for (p, q) in [
            (0.05, q05),
            (0.25, q25),
            (0.5, q50),
            (0.75, q75),
            (0.95, q95),
        ] {
            assert_close(quantile(&pooled, p), q, &format!("{name} quantile {p}"));
        }

        let summary = summarize(&chains);
        let fields = [
            (summary.rhat, rhat, "rhat"),
            (summary.ess_bulk, bulk, "ess_bulk"),
            (summary.ess_tail, tail, "ess_tail"),
            (summary.mcse_mean, mcse, "mcse_mean"),
            (summary.mean, m, "mean"),
            (summary.sd, s, "sd"),
            (summary.q05, q05, "q05"),
            (summary.q25, q25, "q25"),
            (summary.q50, q50, "q50"),
            (summary.q75, q75, "q75"),
            (summary.q95, q95, "q95"),
        ];
        for (actual, expected, field) in fields {
            assert_close(actual, expected, &format!("{name} summary.{field}"));
        }
    }
}

#[test]
fn rank_rhat_separates_converged_from_unconverged_chains() {
    let rhat_of_case = |name: &str| {
        let case = CASES.iter().find(|c| c.name == name).unwrap();
        let chains = generate(case);
        let chains: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
        rank_normalized_split_rhat(&chains)
    };
    assert!(rhat_of_case("mixed") < 1.01);
    assert!(rhat_of_case("shifted") > 1.05);
    assert!(rhat_of_case("sticky") > 1.05);
}

#[test]
fn inverse_normal_cdf_matches_known_quantiles() {
    // scipy.stats.norm.ppf (scipy 1.17.1), covering all three AS 241 regions.
    let known = [
        (1e-300, -37.0470962993612),
        (1e-20, -9.262340089798409),
        (1e-10, -6.361340902404056),
        (0.001, -3.090232306167813),
        (0.025, -1.9599639845400545),
        (0.05, -1.6448536269514729),
        (0.3, -0.5244005127080409),
        (0.5, 0.0),
        (0.6, 0.2533471031357997),
        (0.975, 1.959963984540054),
        (0.999, 3.090232306167813),
        (1.0 - 1e-12, 7.0344869100478356),
    ];
    for (p, z) in known {
        let got = inverse_normal_cdf(p);
        assert!(
            (got - z).abs() <= 1e-13 * z.abs().max(1.0),
            "Φ⁻¹({p}) = {got}, expected {z}"
        );
    }
    assert_eq!(inverse_normal_cdf(0.0), f64::NEG_INFINITY);
    assert_eq!(inverse_normal_cdf(1.0), f64::INFINITY);
    assert!(inverse_normal_cdf(-0.1).is_nan());
    assert!(inverse_normal_cdf(1.5).is_nan());
    assert!(inverse_normal_cdf(f64::NAN).is_nan());
}

/// Every diagnostic, for inputs on which they are all undefined.
fn all_diagnostics(chains: &[&[f64]]) -> [f64; 10] {
    let s = summarize(chains);
    [
        split_rhat(chains),
        rank_normalized_split_rhat(chains),
        ess(chains),
        ess_bulk(chains),
        ess_tail(chains),
        mcse_mean(chains),
        s.rhat,
        s.ess_bulk,
        s.ess_tail,
        s.mcse_mean,
    ]
}

#[test]
fn too_few_draws_give_nan() {
    let three: [&[f64]; 2] = [&[1.0, 2.0, 3.5], &[0.5, 2.5, 1.0]];
    for draws in 0..MIN_DRAWS {
        let chains: Vec<&[f64]> = three.iter().map(|c| &c[..draws.min(3)]).collect();
        assert!(
            all_diagnostics(&chains).iter().all(|d| d.is_nan()),
            "{draws} draws"
        );
    }
    assert!(all_diagnostics(&[]).iter().all(|d| d.is_nan()));
    // Mean, sd and quantiles still describe whatever draws there are.
    let s = summarize(&three);
    assert_close(s.mean, 10.5 / 6.0, "mean of 3 × 2 draws");
    assert_close(s.q50, 1.5, "median of 3 × 2 draws");
    let empty = summarize(&[]);
    assert!(empty.mean.is_nan() && empty.sd.is_nan() && empty.q50.is_nan());
}

#[test]
fn unequal_or_non_finite_chains_give_nan() {
    let ragged: [&[f64]; 2] = [&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0, 2.0, 3.0, 4.0]];
    assert!(all_diagnostics(&ragged).iter().all(|d| d.is_nan()));
    assert_close(summarize(&ragged).mean, 25.0 / 9.0, "mean of ragged chains");
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let chains: [&[f64]; 2] = [&[1.0, 2.0, bad, 4.0], &[1.0, 2.0, 3.0, 4.0]];
        assert!(all_diagnostics(&chains).iter().all(|d| d.is_nan()), "{bad}");
    }
    let with_nan: [&[f64]; 1] = [&[1.0, f64::NAN, 3.0, 4.0]];
    assert!(summarize(&with_nan).q50.is_nan());
}

#[test]
fn constant_draws_count_as_independent_and_leave_rhat_undefined() {
    // ArviZ 0.23.4 on np.full((4, 101), 2.5): rhat nan (both methods), ess bulk 400, tail
    // 400, identity 404, mcse mean 0.
    let chain = [2.5; 101];
    let chains = [&chain[..]; 4];
    assert!(rank_normalized_split_rhat(&chains).is_nan());
    assert!(split_rhat(&chains).is_nan());
    assert_eq!(ess_bulk(&chains), 400.0);
    assert_eq!(ess_tail(&chains), 400.0);
    assert_eq!(ess(&chains), 404.0);
    assert_eq!(mcse_mean(&chains), 0.0);
}

#[test]
fn fft_autocovariance_matches_direct_sum() {
    let case = &CASES[1];
    let chains = generate(case);
    let draws = Draws::new(&chains.iter().map(Vec::as_slice).collect::<Vec<_>>()).unwrap();
    // Three chains exercise both the paired and the unpaired transform.
    let draws = Draws {
        values: draws.values[..3 * draws.draws].to_vec(),
        chains: 3,
        draws: draws.draws,
    };
    let fast = mean_autocovariance(&draws);
    let n = draws.draws;
    for lag in 0..n {
        let direct = (0..draws.chains)
            .map(|c| {
                let chain = draws.chain(c);
                let m = mean(chain);
                (0..n - lag)
                    .map(|t| (chain[t] - m) * (chain[t + lag] - m))
                    .sum::<f64>()
                    / n as f64
            })
            .sum::<f64>()
            / draws.chains as f64;
        assert!((fast[lag] - direct).abs() < 1e-12, "lag {lag}");
    }
}

#[test]
fn quantile_follows_numpy_linear() {
    // np.quantile([3, 1, 4, 2], p) for these p: 1.0, 2.2, 2.5, 3.55, 4.0.
    let xs = [3.0, 1.0, 4.0, 2.0];
    for (p, q) in [(0.0, 1.0), (0.4, 2.2), (0.5, 2.5), (0.85, 3.55), (1.0, 4.0)] {
        assert_close(quantile(&xs, p), q, &format!("quantile {p}"));
        assert_close(quantile(&[1.0, 2.0, 3.0, 4.0], p), q, "sorted input");
    }
    assert_eq!(quantile(&[7.0], 0.3), 7.0);
    assert!(quantile(&[], 0.5).is_nan());
    assert!(quantile(&xs, 1.5).is_nan());
    assert!(quantile(&xs, f64::NAN).is_nan());
    assert!(quantile(&[1.0, f64::NAN], 0.5).is_nan());
}

#[test]
fn mean_and_sd() {
    assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
    assert_eq!(sd(&[1.0, 2.0, 6.0]), 7.0f64.sqrt());
    assert!(mean(&[]).is_nan());
    assert!(sd(&[1.0]).is_nan());
}

#[test]
fn summary_round_trips_through_json() {
    let chains = generate(&CASES[0]);
    let chains: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
    let summary = summarize(&chains);
    let json = serde_json::to_string(&summary).unwrap();
    let back: Summary = serde_json::from_str(&json).unwrap();
    // Without its `float_roundtrip` feature serde_json may parse a float an ulp off.
    let values = |s: &Summary| {
        [
            s.mean,
            s.sd,
            s.q05,
            s.q25,
            s.q50,
            s.q75,
            s.q95,
            s.rhat,
            s.ess_bulk,
            s.ess_tail,
            s.mcse_mean,
        ]
    };
    for (got, want) in values(&back).into_iter().zip(values(&summary)) {
        assert!((got - want).abs() <= 1e-15 * want.abs(), "{got} != {want}");
    }
    assert!(json.contains("\"ess_tail\":"));
}
