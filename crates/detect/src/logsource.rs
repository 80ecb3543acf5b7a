//! Log-source routing: which of Quarry's source kinds a rule's `logsource` reads, and, for node logs, which
//! programs.
//!
//! | rule `logsource` | Quarry events |
//! |---|---|
//! | `product: kubernetes, service: audit` (any `category`) | `audit` |
//! | `product: kubernetes, service: container` | `container` (stdout/stderr of pods) |
//! | `product: aws, service: cloudtrail` | `cloudtrail` |
//! | `product: aws, service: vpcflow` | `vpcflow` |
//! | `product: linux, service: syslog` or no service | every `syslog` event (syslog, journald, auth logs) |
//! | `product: linux, service: auth` | `syslog` events of authentication programs (sshd, sudo, su, login, ...) |
//! | `product: linux, service: S` (other) | `syslog` events whose program (`appname`) is `S` (`cron` also matches `CRON` and `crond`) |
//! | no `product`, `service` or `category` | every event |
//!
//! Anything else (Windows, GCP, web server and proxy access logs, process creation, ...) names logs Quarry
//! does not collect; such rules are reported as unsupported with that reason instead of being loaded.

use quarry_model::{Event, Kind};
use rsigma_parser::LogSource;

/// Programs whose messages are authentication events (`service: auth`).
const AUTH_PROGRAMS: &[&str] = &[
    "sshd",
    "sudo",
    "su",
    "login",
    "systemd-logind",
    "passwd",
    "chpasswd",
    "useradd",
    "userdel",
    "usermod",
    "groupadd",
    "gpasswd",
    "polkitd",
    "unix_chkpwd",
    "gdm-password",
];

/// Where a rule applies: one source kind, optionally only some of its programs.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The kinds whose events the rule reads (`None`: all of them).
    pub kinds: Option<Vec<Kind>>,
    /// For node logs: the programs (`appname`, compared ignoring case) the rule reads; empty means all.
    pub programs: Vec<&'static str>,
    /// A program named by the rule that is not in Quarry's list (compared as given).
    pub program: Option<String>,
}

impl Route {
    /// True when `ev` (of `kind`) is one the rule reads.
    pub fn admits(&self, kind: Kind, ev: &Event) -> bool {
        if let Some(kinds) = &self.kinds {
            if !kinds.contains(&kind) {
                return false;
            }
        }
        if self.programs.is_empty() && self.program.is_none() {
            return true;
        }
        let Some(app) = ev.fields.get("appname").and_then(|v| v.as_str()) else {
            return false;
        };
        let app = program_name(app);
        self.programs.iter().any(|p| p.eq_ignore_ascii_case(app))
            || self
                .program
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(app))
    }

    /// True when some events of `kind` can pass.
    pub fn reads(&self, kind: Kind) -> bool {
        self.kinds.as_ref().is_none_or(|ks| ks.contains(&kind))
    }
}

/// The program a syslog tag names: without a PAM-style suffix (`sshd(pam_unix)` is sshd), and with
/// OpenSSH 9.8's per-session process (`sshd-session`) counted as sshd.
fn program_name(app: &str) -> &str {
    let app = match app.find('(') {
        Some(i) if app.ends_with(')') => &app[..i],
        _ => app,
    };
    if app.eq_ignore_ascii_case("sshd-session") {
        "sshd"
    } else {
        app
    }
}

/// Routes a rule's log source, or says why Quarry cannot feed it.
pub fn route(ls: &LogSource) -> Result<Route, String> {
    let lower = |o: &Option<String>| o.as_deref().map(str::to_ascii_lowercase);
    let (product, service, category) =
        (lower(&ls.product), lower(&ls.service), lower(&ls.category));
    let kinds = |k: &[Kind]| Route {
        kinds: Some(k.to_vec()),
        programs: Vec::new(),
        program: None,
    };
    match (product.as_deref(), service.as_deref(), category.as_deref()) {
        (None, None, None) => Ok(Route {
            kinds: None,
            programs: Vec::new(),
            program: None,
        }),
        (Some("kubernetes"), Some("audit"), _) => Ok(kinds(&[Kind::Audit])),
        (Some("kubernetes"), Some("container"), _) => Ok(kinds(&[Kind::Container])),
        (Some("aws"), Some("cloudtrail"), _) => Ok(kinds(&[Kind::CloudTrail])),
        (Some("aws"), Some("vpcflow"), _) => Ok(kinds(&[Kind::VpcFlow])),
        (Some("linux"), service, None) => {
            let mut r = kinds(&[Kind::Syslog]);
            match service {
                None | Some("syslog") => {}
                Some("auth") => r.programs = AUTH_PROGRAMS.to_vec(),
                Some("cron") => r.programs = vec!["cron", "crond"],
                Some(s) => r.program = Some(s.to_string()),
            }
            Ok(r)
        }
        _ => Err(format!(
            "log source {} is not collected by Quarry (it collects kubernetes/audit, kubernetes/container, \
             aws/cloudtrail, aws/vpcflow and linux node logs)",
            describe(ls)
        )),
    }
}

/// `product/service/category` as written in the rule, for messages.
pub fn describe(ls: &LogSource) -> String {
    let parts: Vec<String> = [
        ("product", &ls.product),
        ("service", &ls.service),
        ("category", &ls.category),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}")))
    .collect();
    if parts.is_empty() {
        "(none)".into()
    } else {
        format!("{{{}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(product: Option<&str>, service: Option<&str>, category: Option<&str>) -> LogSource {
        LogSource {
            product: product.map(Into::into),
            service: service.map(Into::into),
            category: category.map(Into::into),
            ..LogSource::default()
        }
    }

    fn syslog(app: &str) -> Event {
        let mut ev = Event::text(0, "x");
        ev.fields.push("appname", app);
        ev
    }

    #[test]
    fn routes() {
        let audit = route(&ls(Some("kubernetes"), Some("audit"), Some("application"))).unwrap();
        assert_eq!(audit.kinds, Some(vec![Kind::Audit]));
        let sshd = route(&ls(Some("linux"), Some("sshd"), None)).unwrap();
        assert!(sshd.admits(Kind::Syslog, &syslog("sshd")));
        assert!(!sshd.admits(Kind::Syslog, &syslog("sudo")));
        assert!(sshd.admits(Kind::Syslog, &syslog("sshd(pam_unix)")));
        assert!(sshd.admits(Kind::Syslog, &syslog("sshd-session")));
        assert!(!sshd.admits(Kind::Audit, &syslog("sshd")));
        let auth = route(&ls(Some("linux"), Some("auth"), None)).unwrap();
        assert!(auth.admits(Kind::Syslog, &syslog("sudo")));
        assert!(!auth.admits(Kind::Syslog, &syslog("kernel")));
        let cron = route(&ls(Some("linux"), Some("cron"), None)).unwrap();
        assert!(cron.admits(Kind::Syslog, &syslog("CRON")));
        let any = route(&ls(None, None, None)).unwrap();
        assert!(any.admits(Kind::Container, &Event::text(0, "x")));
        let err = route(&ls(None, None, Some("proxy"))).unwrap_err();
        assert!(err.contains("category: proxy"), "{err}");
        assert!(route(&ls(Some("gcp"), Some("gcp.audit"), None)).is_err());
        assert!(route(&ls(Some("linux"), None, Some("process_creation"))).is_err());
    }
}
