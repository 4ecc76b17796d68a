//! The seed claims (`SEED_CLAIMS.md`, C1 to C31) and which of them no scenario covers
//! yet. `kafkasim list` and the tests compute the uncovered claims from the scenario
//! files and hold them to [`NOT_YET_COVERED`], so that list shrinks as scenarios
//! arrive.

use crate::scenario::{collect_paths, is_claim, Scenario, ScenarioError, CLAIMS};
use std::path::{Path, PathBuf};

/// Claims that no shipped scenario demonstrates yet, each with what it waits for.
pub const NOT_YET_COVERED: &[(&str, &str)] = &[];

/// Every claim, in order.
pub fn all() -> Vec<String> {
    (1..=CLAIMS).map(|n| format!("C{n}")).collect()
}

/// The claims of `all()` that are not in `covered`, in order.
pub fn not_covered(covered: &[String]) -> Vec<String> {
    all().into_iter().filter(|c| !covered.contains(c)).collect()
}

/// Configurations that Kafka refuses (`examples/invalid/`), with the claims they
/// declare: a file counts only if loading it is in fact refused.
pub fn refused_configurations(dir: &Path) -> Result<Vec<(PathBuf, Vec<String>)>, ScenarioError> {
    let mut out = Vec::new();
    for path in collect_paths(&[dir.to_path_buf()])? {
        if Scenario::load(&path).is_ok() {
            continue;
        }
        let err = |message: String| ScenarioError {
            file: path.display().to_string(),
            field: "claims".into(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(format!("cannot read: {e}")))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
        let claims: Vec<String> = v["claims"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str())
                    .filter(|c| is_claim(c))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        out.push((path, claims));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_c1_to_c31() {
        assert!(is_claim("C1") && is_claim("C31"));
        for bad in ["C0", "C32", "C01", "c1", "1", "C"] {
            assert!(!is_claim(bad), "{bad}");
        }
        assert_eq!(all().len(), 31);
        assert_eq!(not_covered(&all()[1..]), ["C1"]);
        assert!(
            NOT_YET_COVERED.is_empty(),
            "record-headers covers C1, the last one"
        );
        for (c, why) in NOT_YET_COVERED {
            assert!(is_claim(c) && !why.is_empty(), "{c}");
        }
    }
}
