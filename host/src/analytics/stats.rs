//! Significance tests for A/B comparisons: a two-proportion z-test (success rate) and
//! Welch's t-test (response time).

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SignificanceTest)]
pub struct TestResult {
    /// z (proportions) or t (means).
    pub statistic: f64,
    /// Degrees of freedom (Welch's t-test only).
    pub degrees_of_freedom: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
    /// p < 0.05.
    pub significant: bool,
}

/// Two-proportion z-test of `s1/n1` against `s2/n2`; `None` when a side is empty or the
/// pooled proportion is 0 or 1.
pub fn two_proportion_z(s1: i64, n1: i64, s2: i64, n2: i64) -> Option<TestResult> {
    if n1 <= 0 || n2 <= 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (s1 + s2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se == 0.0 {
        return None;
    }
    let z = (s1 as f64 / n1f - s2 as f64 / n2f) / se;
    let p = 2.0 * (1.0 - normal_cdf(z.abs()));
    Some(TestResult {
        statistic: z,
        degrees_of_freedom: None,
        p_value: p,
        significant: p < 0.05,
    })
}

/// Welch's t-test from sums: `n`, `Σx` and `Σx²` of each sample.
pub fn welch_t(n1: i64, sum1: f64, sq1: f64, n2: i64, sum2: f64, sq2: f64) -> Option<TestResult> {
    if n1 < 2 || n2 < 2 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (m1, m2) = (sum1 / n1f, sum2 / n2f);
    let v1 = ((sq1 - n1f * m1 * m1) / (n1f - 1.0)).max(0.0);
    let v2 = ((sq2 - n2f * m2 * m2) / (n2f - 1.0)).max(0.0);
    let (a, b) = (v1 / n1f, v2 / n2f);
    if a + b == 0.0 {
        return None;
    }
    let t = (m1 - m2) / (a + b).sqrt();
    let df = (a + b).powi(2) / (a * a / (n1f - 1.0) + b * b / (n2f - 1.0));
    let p = student_t_two_sided(t.abs(), df);
    Some(TestResult {
        statistic: t,
        degrees_of_freedom: Some(df),
        p_value: p,
        significant: p < 0.05,
    })
}

/// Φ(x), from the complementary error function (Numerical Recipes' erfc, |error| < 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// P(|T| > t) for Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
fn student_t_two_sided(t: f64, df: f64) -> f64 {
    incomplete_beta(df / 2.0, 0.5, df / (df + t * t)).clamp(0.0, 1.0)
}

/// The regularised incomplete beta function I_x(a, b) (continued fraction, Lentz).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-30;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-12 {
            break;
        }
    }
    h
}

/// ln Γ(x), Lanczos approximation.
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 6] = [
        76.180_091_729_471_46,
        -86.505_320_329_416_77,
        24.014_098_240_830_91,
        -1.231_739_572_450_155,
        0.001_208_650_973_866_179,
        -0.000_005_395_239_384_953,
    ];
    let mut y = x;
    let tmp = x + 5.5;
    let tmp = tmp - (x + 0.5) * tmp.ln();
    let mut ser = 1.000_000_000_190_015;
    for g in G {
        y += 1.0;
        ser += g / y;
    }
    -tmp + (2.506_628_274_631_000_5 * ser / x).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_tables() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
    }

    #[test]
    fn z_test_by_hand() {
        // 90/100 vs 75/100: pooled 0.825, se = sqrt(0.825·0.175·0.02) = 0.05373, z = 2.792.
        let r = two_proportion_z(90, 100, 75, 100).unwrap();
        assert!((r.statistic - 2.792).abs() < 1e-3, "{}", r.statistic);
        assert!((r.p_value - 0.00524).abs() < 2e-4, "{}", r.p_value);
        assert!(r.significant);
        assert!(!two_proportion_z(50, 100, 48, 100).unwrap().significant);
    }

    #[test]
    fn welch_by_hand() {
        // Samples [1,2,3,4,5] and [2,4,6,8,10]: means 3 and 6, variances 2.5 and 10,
        // t = −3/√2.5 = −1.897, df = 6.25/1.0625 = 5.882, two-sided p ≈ 0.107.
        let r = welch_t(5, 15.0, 55.0, 5, 30.0, 220.0).unwrap();
        assert!((r.statistic + 1.8974).abs() < 1e-3, "{}", r.statistic);
        assert!((r.degrees_of_freedom.unwrap() - 5.882).abs() < 1e-2);
        assert!((r.p_value - 0.107).abs() < 5e-3, "{}", r.p_value);
        assert!(!r.significant);
    }
}
