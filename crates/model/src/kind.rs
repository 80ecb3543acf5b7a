use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kind of a log source; it decides how records are parsed and how long they are kept.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Container stdout/stderr (CRI or docker json-file lines).
    Container,
    /// Kubernetes API audit events.
    Audit,
    /// AWS VPC flow logs.
    #[serde(rename = "vpcflow")]
    VpcFlow,
    /// AWS CloudTrail records.
    #[serde(rename = "cloudtrail")]
    CloudTrail,
    /// Syslog (RFC 3164 / 5424), journald and auth logs of nodes.
    Syslog,
    /// Any JSON records.
    Json,
    /// Plain text lines.
    #[default]
    Text,
    /// Quarry's own access audit: who queried, hunted, changed alerts or tokens, and when. Written only by
    /// the server, never accepted from clients.
    Access,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 8] = [
        Kind::Container,
        Kind::Audit,
        Kind::VpcFlow,
        Kind::CloudTrail,
        Kind::Syslog,
        Kind::Json,
        Kind::Text,
        Kind::Access,
    ];

    /// The kind's name as used in the API, the CLI and `@source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Audit => "audit",
            Kind::VpcFlow => "vpcflow",
            Kind::CloudTrail => "cloudtrail",
            Kind::Syslog => "syslog",
            Kind::Json => "json",
            Kind::Text => "text",
            Kind::Access => "access",
        }
    }

    /// A small stable number for the kind, used where it is stored.
    pub fn code(self) -> u8 {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(6) as u8
    }

    /// The kind with the given [`Kind::code`].
    pub fn from_code(code: u64) -> Option<Kind> {
        Kind::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not one of [`Kind::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown source kind {0:?}: expected one of container, audit, vpcflow, cloudtrail, syslog, json, text, access")]
pub struct ParseKindError(pub String);

impl FromStr for Kind {
    type Err = ParseKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseKindError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
            assert_eq!(Kind::from_code(k.code() as u64), Some(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert!("nginx"
            .parse::<Kind>()
            .unwrap_err()
            .to_string()
            .contains("vpcflow"));
    }
}
