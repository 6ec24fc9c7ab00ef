//! The standard normal quantile function, which rank normalisation maps ranks through.

/// The standard normal distribution's quantile function Φ⁻¹(p).
///
/// Wichura's algorithm AS 241 (PPND16, Applied Statistics 37(3), 1988), accurate to about 1 part
/// in 10¹⁶ over the whole range; it is what R's `qnorm` and Python's
/// `statistics.NormalDist.inv_cdf` use. Returns −∞ at 0, +∞ at 1 and NaN outside `[0, 1]`.
// The coefficients are kept digit for digit as published so they can be checked against the
// paper, although f64 cannot hold them all.
#[allow(clippy::excessive_precision)]
pub fn inverse_normal_cdf(p: f64) -> f64 {
    // Rational approximations for |p − 0.5| <= 0.425, in r = 0.180625 − q².
    const A: [f64; 8] = [
        3.387132872796366608,
        1.3314166789178437745e2,
        1.9715909503065514427e3,
        1.3731693765509461125e4,
        4.5921953931549871457e4,
        6.7265770927008700853e4,
        3.3430575583588128105e4,
        2.5090809287301226727e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.2313330701600911252e1,
        6.871870074920579083e2,
        5.3941960214247511077e3,
        2.1213794301586595867e4,
        3.930789580009271061e4,
        2.8729085735721942674e4,
        5.226495278852854561e3,
    ];
    // For the tails with r = sqrt(−ln(min(p, 1 − p))) <= 5, in r − 1.6.
    const C: [f64; 8] = [
        1.42343711074968357734,
        4.6303378461565452959,
        5.7694972214606914055,
        3.64784832476320460504,
        1.27045825245236838258,
        2.4178072517745061177e-1,
        2.27238449892691845833e-2,
        7.7454501427834140764e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.05319162663775882187,
        1.6763848301838038494,
        6.8976733498510000455e-1,
        1.4810397642748007459e-1,
        1.51986665636164571966e-2,
        5.475938084995344946e-4,
        1.05075007164441684324e-9,
    ];
    // For the far tails, r > 5 (p below about 1.4e-11), in r − 5.
    const E: [f64; 8] = [
        6.6579046435011037772,
        5.4637849111641143699,
        1.7848265399172913358,
        2.9656057182850489123e-1,
        2.6532189526576123093e-2,
        1.2426609473880784386e-3,
        2.71155556874348757815e-5,
        2.01033439929228813265e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.9983220655588793769e-1,
        1.3692988092273580531e-1,
        1.48753612908506148525e-2,
        7.868691311456132591e-4,
        1.8463183175100546818e-5,
        1.4215117583164458887e-7,
        2.04426310338993978564e-15,
    ];
    // Horner's rule; coefficients are in increasing powers.
    fn poly(coefficients: &[f64; 8], x: f64) -> f64 {
        coefficients.iter().rev().fold(0.0, |acc, &c| acc * x + c)
    }

    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    // Work with the smaller tail probability so that 1 − p does not lose digits.
    let r = (-(if q < 0.0 { p } else { 1.0 - p }).ln()).sqrt();
    let x = if r <= 5.0 {
        poly(&C, r - 1.6) / poly(&D, r - 1.6)
    } else {
        poly(&E, r - 5.0) / poly(&F, r - 5.0)
    };
    if q < 0.0 {
        -x
    } else {
        x
    }
}
