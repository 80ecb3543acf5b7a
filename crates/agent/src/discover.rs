//! Finding the files to read: container logs under the pods root (`<ns>_<pod>_<uid>/<container>/N.log`,
//! and their rotated `N.log.<time>` siblings), `/var/log/containers` links that lead elsewhere (docker's
//! json-file logs), and the configured node files with their rotated siblings.
//!
//! A *current* file is one a writer appends to; a *rotated* one is only read when the agent already follows
//! it by identity, or when it appeared while the agent was down.

use quarry_kube::parse_pod_dir;
use std::fs;
use std::path::{Path, PathBuf};

/// Whose log a file is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A container of a pod.
    Container {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Pod uid (empty when the path does not say).
        uid: String,
        /// Container name.
        container: String,
    },
    /// The configured node file with this index.
    NodeFile(usize),
}

/// A file found by a scan.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its path (a link's target for `/var/log/containers` links).
    pub path: PathBuf,
    /// A writer appends to it (not a rotated copy).
    pub current: bool,
    /// Whose it is.
    pub owner: Owner,
}

/// Splits a `/var/log/containers` link name `<pod>_<namespace>_<container>-<id>.log`.
pub fn parse_container_link(name: &str) -> Option<(&str, &str, &str)> {
    let stem = name.strip_suffix(".log")?;
    let mut it = stem.splitn(3, '_');
    let (pod, ns, rest) = (it.next()?, it.next()?, it.next()?);
    let (container, id) = rest.rsplit_once('-')?;
    (!pod.is_empty() && !ns.is_empty() && !container.is_empty() && !id.is_empty())
        .then_some((pod, ns, container))
}

/// True for compressed or temporary rotation leftovers, which are never read.
fn skipped(name: &str) -> bool {
    [".gz", ".zst", ".bz2", ".xz", ".tmp", ".swp"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// A container log name: `Some(true)` for `N.log`, `Some(false)` for a rotated `N.log.<suffix>`.
fn container_log_name(name: &str) -> Option<bool> {
    if skipped(name) {
        return None;
    }
    let (stem, rest) = name.split_once(".log")?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match rest {
        "" => Some(true),
        r if r.starts_with('.') && r.len() > 1 => Some(false),
        _ => None,
    }
}

fn entries(dir: &Path) -> Vec<fs::DirEntry> {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Container log files under `pods_root`.
pub fn scan_pods(pods_root: &Path, out: &mut Vec<Found>) {
    for pod_dir in entries(pods_root) {
        scan_pod_dir(&pod_dir.path(), out);
    }
}

/// Container log files of one pod directory (`<ns>_<pod>_<uid>`).
pub fn scan_pod_dir(pod_dir: &Path, out: &mut Vec<Found>) {
    let name = pod_dir.file_name().unwrap_or_default().to_string_lossy();
    let Some((ns, pod, uid)) =
        parse_pod_dir(&name).map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    else {
        return;
    };
    for cdir in entries(pod_dir) {
        if !cdir.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let container = cdir.file_name().to_string_lossy().into_owned();
        for f in entries(&cdir.path()) {
            let fname = f.file_name();
            let Some(current) = container_log_name(&fname.to_string_lossy()) else {
                continue;
            };
            out.push(Found {
                path: f.path(),
                current,
                owner: Owner::Container {
                    namespace: ns.clone(),
                    pod: pod.clone(),
                    uid: uid.clone(),
                    container: container.clone(),
                },
            });
        }
    }
}

/// The pod directory (`pods_root/<ns>_<pod>_<uid>`) a path under `pods_root` belongs to.
pub fn pod_dir_of(pods_root: &Path, path: &Path) -> Option<PathBuf> {
    let first = path.strip_prefix(pods_root).ok()?.components().next()?;
    Some(pods_root.join(first))
}

/// `/var/log/containers` links whose targets are not under `pods_root`.
pub fn scan_container_links(root: &Path, pods_root: &Path, out: &mut Vec<Found>) {
    let pods = fs::canonicalize(pods_root).unwrap_or_else(|_| pods_root.to_path_buf());
    for link in entries(root) {
        let name = link.file_name().to_string_lossy().into_owned();
        let Some((pod, ns, container)) = parse_container_link(&name) else {
            continue;
        };
        let Ok(target) = fs::canonicalize(link.path()) else {
            continue;
        };
        if target.starts_with(&pods) || target.starts_with(pods_root) {
            continue;
        }
        out.push(Found {
            path: target,
            current: true,
            owner: Owner::Container {
                namespace: ns.into(),
                pod: pod.into(),
                uid: String::new(),
                container: container.into(),
            },
        });
    }
}

/// A configured node file and its rotated siblings (`name.1`, `name-20240101`, not compressed ones).
pub fn scan_node_file(index: usize, path: &Path, out: &mut Vec<Found>) {
    if path.exists() {
        out.push(Found {
            path: path.to_path_buf(),
            current: true,
            owner: Owner::NodeFile(index),
        });
    }
    let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
        return;
    };
    let base = base.to_string_lossy();
    for e in entries(dir) {
        let name = e.file_name().to_string_lossy().into_owned();
        let rotated = name.len() > base.len()
            && name.starts_with(base.as_ref())
            && matches!(name.as_bytes()[base.len()], b'.' | b'-')
            && !skipped(&name);
        if rotated && e.file_type().is_ok_and(|t| t.is_file()) {
            out.push(Found {
                path: e.path(),
                current: false,
                owner: Owner::NodeFile(index),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_pod_dir("kube-system_coredns-5d78c9869d-abcde_0f1e2d3c-aaaa-bbbb"),
            Some((
                "kube-system",
                "coredns-5d78c9869d-abcde",
                "0f1e2d3c-aaaa-bbbb"
            ))
        );
        assert_eq!(parse_pod_dir("nounderscore"), None);
        assert_eq!(parse_pod_dir("a__c"), None);
        assert_eq!(
            parse_container_link("web-1_shop_nginx-0123abcd.log"),
            Some(("web-1", "shop", "nginx"))
        );
        assert_eq!(
            parse_container_link("web-1_shop_side-car-0123abcd.log"),
            Some(("web-1", "shop", "side-car"))
        );
        assert_eq!(container_log_name("0.log"), Some(true));
        assert_eq!(container_log_name("12.log"), Some(true));
        assert_eq!(container_log_name("0.log.20240501-101500"), Some(false));
        assert_eq!(container_log_name("0.log.20240501-101500.gz"), None);
        assert_eq!(container_log_name("0.log.tmp"), None);
        assert_eq!(container_log_name("x.log"), None);
    }

    #[test]
    fn scans_a_pod_tree_and_node_files() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("shop_web-1_uid1/nginx");
        fs::create_dir_all(&c).unwrap();
        for f in ["0.log", "0.log.20240501-101500", "0.log.20240501-091500.gz"] {
            fs::write(c.join(f), "x\n").unwrap();
        }
        fs::create_dir_all(d.path().join("not-a-pod/x")).unwrap();
        let mut found = Vec::new();
        scan_pods(d.path(), &mut found);
        let mut names: Vec<(String, bool)> = found
            .iter()
            .map(|f| {
                (
                    f.path.file_name().unwrap().to_string_lossy().into(),
                    f.current,
                )
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                ("0.log".to_string(), true),
                ("0.log.20240501-101500".to_string(), false)
            ]
        );
        let n = d.path().join("node");
        fs::create_dir_all(&n).unwrap();
        for f in ["auth.log", "auth.log.1", "auth.log.2.gz", "auth.logger"] {
            fs::write(n.join(f), "x\n").unwrap();
        }
        let mut found = Vec::new();
        scan_node_file(0, &n.join("auth.log"), &mut found);
        let mut names: Vec<String> = found
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into())
            .collect();
        names.sort();
        assert_eq!(names, vec!["auth.log", "auth.log.1"]);
    }
}
