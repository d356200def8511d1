//! Significance tests for A/B comparisons: a two-proportion z-test (success rate) and
//! Welch's t-test (response time).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
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
    let p = normal_two_sided(z);
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
    let p = student_t_two_sided(t, df);
    Some(TestResult {
        statistic: t,
        degrees_of_freedom: Some(df),
        p_value: p,
        significant: p < 0.05,
    })
}

/// P(|Z| > |z|) for a standard normal Z.
fn normal_two_sided(z: f64) -> f64 {
    let standard = Normal::standard();
    (2.0 * standard.sf(z.abs())).clamp(0.0, 1.0)
}

/// P(|T| > |t|) for Student's t with `df` degrees of freedom.
fn student_t_two_sided(t: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => (2.0 * dist.sf(t.abs())).clamp(0.0, 1.0),
        // Only a non-positive or NaN df gets here; the callers never make one.
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_match_published_values() {
        // Normal: z = 1.959964 is the two-sided 5 % point, 2.575829 the 1 % point.
        assert!((normal_two_sided(1.959_964) - 0.05).abs() < 1e-6);
        assert!((normal_two_sided(-2.575_829) - 0.01).abs() < 1e-6);
        // Student's t tables: df 10, t = 2.228 → 0.05; df 1, t = 12.706 → 0.05; df 30,
        // t = 2.750 → 0.01.
        assert!((student_t_two_sided(2.228, 10.0) - 0.05).abs() < 1e-4);
        assert!((student_t_two_sided(12.706, 1.0) - 0.05).abs() < 1e-4);
        assert!((student_t_two_sided(-2.750, 30.0) - 0.01).abs() < 1e-4);
    }

    #[test]
    fn z_test_by_hand() {
        // 90/100 vs 75/100: pooled 0.825, se = sqrt(0.825·0.175·0.02) = 0.05373, z = 2.792.
        let r = two_proportion_z(90, 100, 75, 100).unwrap();
        assert!((r.statistic - 2.792).abs() < 1e-3, "{}", r.statistic);
        // 2·(1 − Φ(2.792)) = 0.0052383.
        assert!((r.p_value - 0.005_238_3).abs() < 1e-5, "{}", r.p_value);
        assert!(r.significant);
        assert!(!two_proportion_z(50, 100, 48, 100).unwrap().significant);
    }

    #[test]
    fn welch_by_hand() {
        // Samples [1,2,3,4,5] and [2,4,6,8,10]: means 3 and 6, variances 2.5 and 10,
        // t = −3/√2.5 = −1.897, df = 6.25/1.0625 = 5.882, two-sided p = 0.10753 (the t density
        // integrated numerically).
        let r = welch_t(5, 15.0, 55.0, 5, 30.0, 220.0).unwrap();
        assert!((r.statistic + 1.8974).abs() < 1e-3, "{}", r.statistic);
        assert!((r.degrees_of_freedom.unwrap() - 5.882).abs() < 1e-2);
        assert!((r.p_value - 0.107_53).abs() < 1e-4, "{}", r.p_value);
        assert!(!r.significant);
    }
}
