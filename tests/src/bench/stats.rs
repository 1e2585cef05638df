//! Medians with spread: every timing in the report is one of these.

use std::fmt;
use std::time::Duration;

/// Several measurements of one figure, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// The middle value (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// How many.
    pub runs: usize,
    /// What they are: `runs` (whole measurements) or `samples` (criterion's, each a mean of many
    /// iterations).
    pub of_what: &'static str,
}

impl Spread {
    /// The spread of `values` (seconds); `None` when there are none.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        let runs = values.len();
        let (min, max) = (*values.first()?, *values.last()?);
        let median =
            if runs % 2 == 1 { values[runs / 2] } else { (values[runs / 2 - 1] + values[runs / 2]) / 2.0 };
        Some(Self { median, min, max, runs, of_what: "runs" })
    }

    /// No measurement at all.
    pub fn none() -> Self {
        Self { median: 0.0, min: 0.0, max: 0.0, runs: 0, of_what: "runs" }
    }

    /// Of durations.
    pub fn of_durations(values: &[Duration]) -> Option<Self> {
        Self::of(values.iter().map(Duration::as_secs_f64).collect())
    }

    /// The same figures as rates: `count` per measured second (the slowest run gives the minimum).
    pub fn rate(&self, count: f64) -> Rate {
        Rate { median: count / self.median, min: count / self.max, max: count / self.min, runs: self.runs }
    }
}

/// `median (min–max, n runs)` with a unit chosen for the median; a single run is `value (1 run)`.
impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scale, unit) = unit(self.median);
        if self.runs == 1 {
            return write!(
                f,
                "{} {unit} (1 {})",
                sig(self.median * scale),
                self.of_what.trim_end_matches('s')
            );
        }
        write!(
            f,
            "{} {unit} ({}–{}, {} {})",
            sig(self.median * scale),
            sig(self.min * scale),
            sig(self.max * scale),
            self.runs,
            self.of_what
        )
    }
}

/// A rate per second with its spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// Median rate.
    pub median: f64,
    /// Slowest run's rate.
    pub min: f64,
    /// Fastest run's rate.
    pub max: f64,
    /// How many runs.
    pub runs: usize,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.runs == 1 {
            return write!(f, "{} /s (1 run)", sig(self.median));
        }
        write!(f, "{} /s ({}–{}, {} runs)", sig(self.median), sig(self.min), sig(self.max), self.runs)
    }
}

fn unit(seconds: f64) -> (f64, &'static str) {
    match seconds {
        s if s >= 1.0 => (1.0, "s"),
        s if s >= 1e-3 => (1e3, "ms"),
        s if s >= 1e-6 => (1e6, "µs"),
        _ => (1e9, "ns"),
    }
}

/// Three significant digits, without a trailing `.0`.
pub fn sig(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    // Digits after the point for three significant ones (none for 100 and above).
    let magnitude = value.abs().log10().floor() as i32;
    let digits = usize::try_from((2 - magnitude).clamp(0, 9)).unwrap_or(0);
    format!("{value:.digits$}")
}

/// A whole number with thousands separators: `100000` is `100,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_spreads_and_units() {
        let s = Spread::of(vec![0.003, 0.001, 0.002, 0.010]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (0.0025, 0.001, 0.010, 4));
        assert_eq!(s.to_string(), "2.50 ms (1.00–10.0, 4 runs)");
        assert_eq!(
            Spread::of(vec![2.0, 1.0, 3.0]).unwrap().rate(30.0).to_string(),
            "15.0 /s (10.0–30.0, 3 runs)"
        );
        assert_eq!(Spread::of(vec![160.2]).unwrap().to_string(), "160 s (1 run)");
        assert_eq!(Spread::of(vec![4.0]).unwrap().rate(8.0).to_string(), "2.00 /s (1 run)");
        assert_eq!(Spread::of(vec![]), None);
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(
            [sig(0.012345), sig(1.5), sig(12.0), sig(1234.5), sig(0.0)],
            ["0.0123", "1.50", "12.0", "1234", "0"]
        );
    }
}
