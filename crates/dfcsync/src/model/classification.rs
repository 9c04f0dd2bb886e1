//! Incident classifications and their reasons, and the one type that pairs them.
//!
//! Sentinel accepts only some pairs (reference §1.5): TruePositive with SuspiciousActivity,
//! BenignPositive with SuspiciousButExpected, FalsePositive with IncorrectAlertLogic or
//! InaccurateData, and Undetermined without a reason. [`Closure`] can only hold those, so a
//! configuration the API would refuse fails when it is read, not when the tool writes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `properties.classification` of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Classification {
    Undetermined,
    TruePositive,
    BenignPositive,
    FalsePositive,
}

/// `properties.classificationReason` of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClassificationReason {
    SuspiciousActivity,
    SuspiciousButExpected,
    IncorrectAlertLogic,
    InaccurateData,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassificationError {
    #[error(
        "unknown classification '{0}' (expected TruePositive, BenignPositive, FalsePositive or Undetermined)"
    )]
    UnknownClassification(String),
    #[error(
        "unknown classification reason '{0}' (expected SuspiciousActivity, SuspiciousButExpected, IncorrectAlertLogic or InaccurateData)"
    )]
    UnknownReason(String),
    #[error("classification {classification} cannot have reason {reason}; {hint}")]
    InvalidPair {
        classification: Classification,
        reason: String,
        hint: &'static str,
    },
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undetermined => "Undetermined",
            Self::TruePositive => "TruePositive",
            Self::BenignPositive => "BenignPositive",
            Self::FalsePositive => "FalsePositive",
        }
    }

    fn valid_reasons_hint(self) -> &'static str {
        match self {
            Self::Undetermined => "Undetermined takes no reason",
            Self::TruePositive => "TruePositive takes SuspiciousActivity",
            Self::BenignPositive => "BenignPositive takes SuspiciousButExpected",
            Self::FalsePositive => "FalsePositive takes IncorrectAlertLogic or InaccurateData",
        }
    }
}

impl FromStr for Classification {
    type Err = ClassificationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Undetermined" => Ok(Self::Undetermined),
            "TruePositive" => Ok(Self::TruePositive),
            "BenignPositive" => Ok(Self::BenignPositive),
            "FalsePositive" => Ok(Self::FalsePositive),
            other => Err(ClassificationError::UnknownClassification(other.to_owned())),
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ClassificationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuspiciousActivity => "SuspiciousActivity",
            Self::SuspiciousButExpected => "SuspiciousButExpected",
            Self::IncorrectAlertLogic => "IncorrectAlertLogic",
            Self::InaccurateData => "InaccurateData",
        }
    }
}

impl FromStr for ClassificationReason {
    type Err = ClassificationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SuspiciousActivity" => Ok(Self::SuspiciousActivity),
            "SuspiciousButExpected" => Ok(Self::SuspiciousButExpected),
            "IncorrectAlertLogic" => Ok(Self::IncorrectAlertLogic),
            "InaccurateData" => Ok(Self::InaccurateData),
            other => Err(ClassificationError::UnknownReason(other.to_owned())),
        }
    }
}

impl fmt::Display for ClassificationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classification with its reason, as a close sends them: only the pairs Sentinel accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Closure {
    classification: Classification,
    reason: Option<ClassificationReason>,
}

impl Closure {
    /// Pairs a classification with a reason, refusing the pairs Sentinel does not accept.
    pub fn new(
        classification: Classification,
        reason: Option<ClassificationReason>,
    ) -> Result<Self, ClassificationError> {
        use Classification as C;
        use ClassificationReason as R;
        let valid = matches!(
            (classification, reason),
            (C::TruePositive, Some(R::SuspiciousActivity))
                | (C::BenignPositive, Some(R::SuspiciousButExpected))
                | (
                    C::FalsePositive,
                    Some(R::IncorrectAlertLogic | R::InaccurateData)
                )
                | (C::Undetermined, None)
        );
        if valid {
            Ok(Self {
                classification,
                reason,
            })
        } else {
            Err(ClassificationError::InvalidPair {
                classification,
                reason: reason.map_or_else(|| "(none)".to_owned(), |r| r.to_string()),
                hint: classification.valid_reasons_hint(),
            })
        }
    }

    /// Parses the two strings of a configuration or an API body.
    pub fn parse(classification: &str, reason: Option<&str>) -> Result<Self, ClassificationError> {
        let c = classification.parse()?;
        let r = reason.map(str::parse).transpose()?;
        Self::new(c, r)
    }

    /// TruePositive / SuspiciousActivity: the default for a resolved alert.
    pub fn true_positive() -> Self {
        Self {
            classification: Classification::TruePositive,
            reason: Some(ClassificationReason::SuspiciousActivity),
        }
    }

    /// BenignPositive / SuspiciousButExpected: the default for dismissed alerts.
    pub fn benign_positive() -> Self {
        Self {
            classification: Classification::BenignPositive,
            reason: Some(ClassificationReason::SuspiciousButExpected),
        }
    }

    pub fn classification(&self) -> Classification {
        self.classification
    }

    pub fn reason(&self) -> Option<ClassificationReason> {
        self.reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_documented_pairs_are_constructible() {
        use Classification as C;
        use ClassificationReason as R;
        let reasons = [
            None,
            Some(R::SuspiciousActivity),
            Some(R::SuspiciousButExpected),
            Some(R::IncorrectAlertLogic),
            Some(R::InaccurateData),
        ];
        let mut valid = Vec::new();
        for c in [
            C::Undetermined,
            C::TruePositive,
            C::BenignPositive,
            C::FalsePositive,
        ] {
            for r in reasons {
                if Closure::new(c, r).is_ok() {
                    valid.push((c, r));
                }
            }
        }
        assert_eq!(
            valid,
            vec![
                (C::Undetermined, None),
                (C::TruePositive, Some(R::SuspiciousActivity)),
                (C::BenignPositive, Some(R::SuspiciousButExpected)),
                (C::FalsePositive, Some(R::IncorrectAlertLogic)),
                (C::FalsePositive, Some(R::InaccurateData)),
            ]
        );
    }

    #[test]
    fn invalid_pair_error_says_what_fits() {
        let err = Closure::parse("TruePositive", Some("InaccurateData")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("TruePositive cannot have reason InaccurateData"),
            "{text}"
        );
        assert!(text.contains("SuspiciousActivity"), "{text}");
        assert!(matches!(
            Closure::parse("Bogus", None),
            Err(ClassificationError::UnknownClassification(_))
        ));
        assert!(matches!(
            Closure::parse("TruePositive", Some("Bogus")),
            Err(ClassificationError::UnknownReason(_))
        ));
    }
}
