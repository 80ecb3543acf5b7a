//! What a file's path says about its contents (kind, node, namespace, pod, container), and the walk that
//! lists the files under the paths given.

use quarry_model::Kind;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Facts read from a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PathFacts {
    /// The kind the path implies.
    pub kind: Option<Kind>,
    /// Node, from a `nodes/<node>/...` prefix.
    pub node: Option<String>,
    /// Namespace, pod and container.
    pub pod: Option<PodCoords>,
}

/// Kubernetes coordinates of a container log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodCoords {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// True when the layout says for certain that the file is a container log (kubelet's `pods/` and
    /// `containers/` names); false for the id-less `<ns>_<pod>_<container>.log` name, which only counts
    /// when the records turn out to be container lines.
    pub certain: bool,
}

/// The file name without a compression suffix (`0.log.gz` -> `0.log`).
fn strip_compression(name: &str) -> &str {
    name.strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(name)
}

/// A DNS label or subdomain as Kubernetes allows in names: lowercase letters, digits, `-` and `.`.
fn k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// `0.log`, `12.log`, and kubelet's rotated `0.log.20240501-101500` (compression already stripped).
fn numbered_log(name: &str) -> bool {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && name[digits..].starts_with(".log")
}

/// `<pod>_<namespace>_<container>-<64 hex id>.log`, the names of kubelet's `/var/log/containers` links.
fn kubelet_container_name(name: &str) -> Option<PodCoords> {
    let stem = name.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut parts = rest.splitn(3, '_');
    let (pod, ns, container) = (parts.next()?, parts.next()?, parts.next()?);
    (k8s_name(pod) && k8s_name(ns) && k8s_name(container)).then(|| PodCoords {
        namespace: ns.to_string(),
        pod: pod.to_string(),
        container: container.to_string(),
        certain: true,
    })
}

/// `<namespace>_<pod>_<container>.log` without a container id, as in Fluent Bit's Kubernetes test data.
fn idless_container_name(name: &str) -> Option<PodCoords> {
    let stem = name.strip_suffix(".log")?;
    let parts: Vec<&str> = stem.split('_').collect();
    match parts.as_slice() {
        [ns, pod, container] if k8s_name(ns) && k8s_name(pod) && k8s_name(container) => {
            Some(PodCoords {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
                certain: false,
            })
        }
        _ => None,
    }
}

/// Reads the facts of a path (see the crate documentation for the rules).
pub(crate) fn path_facts(path: &Path) -> PathFacts {
    let comps: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let mut facts = PathFacts::default();
    let Some(file) = comps.last() else {
        return facts;
    };
    let name = strip_compression(file);
    let n = comps.len();

    // nodes/<node>/<something>: the last such prefix names the node
    if let Some(i) = (0..n.saturating_sub(2))
        .rev()
        .find(|&i| comps[i] == "nodes")
    {
        facts.node = Some(comps[i + 1].clone());
    }

    // .../pods/<namespace>_<pod>_<uid>/<container>/<N>.log
    if n >= 4 && comps[n - 4] == "pods" && numbered_log(name) {
        let mut parts = comps[n - 3].splitn(3, '_');
        if let (Some(ns), Some(pod), Some(uid)) = (parts.next(), parts.next(), parts.next()) {
            let container = &comps[n - 2];
            if k8s_name(ns) && k8s_name(pod) && !uid.is_empty() && k8s_name(container) {
                facts.kind = Some(Kind::Container);
                facts.pod = Some(PodCoords {
                    namespace: ns.to_string(),
                    pod: pod.to_string(),
                    container: container.to_string(),
                    certain: true,
                });
                return facts;
            }
        }
    }

    if let Some(c) = kubelet_container_name(name) {
        facts.kind = Some(Kind::Container);
        facts.pod = Some(c);
        return facts;
    }

    // AWSLogs/<account>/vpcflowlogs/..., AWSLogs/<account>/CloudTrail/... (organization trails have
    // AWSLogs/<org id>/<account>/CloudTrail/...)
    if let Some(i) = comps.iter().position(|c| c == "AWSLogs") {
        let service = comps
            .get(i + 1..n - 1)
            .unwrap_or_default()
            .iter()
            .skip(1)
            .take(2)
            .find_map(|c| match c.to_ascii_lowercase().as_str() {
                "vpcflowlogs" => Some(Kind::VpcFlow),
                "cloudtrail" => Some(Kind::CloudTrail),
                _ => None,
            });
        if service.is_some() {
            facts.kind = service;
            return facts;
        }
    }

    if name.starts_with("kube-apiserver-audit") {
        facts.kind = Some(Kind::Audit);
        return facts;
    }

    facts.pod = idless_container_name(name);
    facts
}

/// A file to import.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    /// The path as found (given, or joined under a given folder).
    pub path: PathBuf,
    /// Size on disk.
    pub size: u64,
}

/// The files under the given paths, and the entries that could not be listed.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub files: Vec<FileEntry>,
    pub skipped: Vec<(PathBuf, String)>,
    /// Files reached again through another path (a symlink); each is imported once.
    pub aliases: usize,
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Lists the files of `paths` in order: each path as given, folders walked recursively in sorted order,
/// skipping hidden entries, following symlinks but not loops. A missing or unreadable given path is an
/// error naming it.
pub(crate) fn list(paths: &[PathBuf]) -> Result<Listing, crate::ImportError> {
    let mut out = Listing::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                crate::ImportError::NotFound(root.clone())
            } else {
                crate::ImportError::Io {
                    path: root.clone(),
                    source: e,
                }
            }
        })?;
        if !meta.is_dir() {
            out.add(&mut seen, root.clone(), &meta);
            continue;
        }
        let walk = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !hidden(e.file_name()));
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => match e.metadata() {
                    Ok(m) => out.add(&mut seen, e.into_path(), &m),
                    Err(err) => out.skipped.push((e.into_path(), err.to_string())),
                },
                Err(err) => {
                    let path = err.path().map(Path::to_path_buf).unwrap_or(root.clone());
                    let reason = match err.loop_ancestor() {
                        Some(a) => format!("symlink loop back to {}", a.display()),
                        None => err
                            .io_error()
                            .map(|e| e.to_string())
                            .unwrap_or_else(|| err.to_string()),
                    };
                    out.skipped.push((path, reason));
                }
            }
        }
    }
    Ok(out)
}

impl Listing {
    fn add(&mut self, seen: &mut HashSet<PathBuf>, path: PathBuf, meta: &std::fs::Metadata) {
        if !meta.is_file() {
            self.skipped.push((path, "not a regular file".to_string()));
            return;
        }
        let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen.insert(canon) {
            self.aliases += 1;
            return;
        }
        self.files.push(FileEntry {
            path,
            size: meta.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "c9898099f6d235126d564ed38a020007ea7a6fac6e25e718de683c9dd0076c16";

    fn coords(f: &PathFacts) -> Option<(&str, &str, &str, bool)> {
        f.pod.as_ref().map(|p| {
            (
                p.namespace.as_str(),
                p.pod.as_str(),
                p.container.as_str(),
                p.certain,
            )
        })
    }

    #[test]
    fn kubelet_pod_dirs() {
        let f = path_facts(Path::new(
            "/var/log/pods/kube-system_coredns-5d78c9869d-abcde_0b1c2d3e-1111-2222-3333-444455556666/coredns/0.log",
        ));
        assert_eq!(f.kind, Some(Kind::Container));
        assert_eq!(
            coords(&f),
            Some(("kube-system", "coredns-5d78c9869d-abcde", "coredns", true))
        );
        assert_eq!(f.node, None);
        let f = path_facts(Path::new(
            "x/nodes/ip-10-0-1-5.ec2.internal/var/log/pods/default_web-1_u1/nginx/3.log.20240501-101500.gz",
        ));
        assert_eq!(coords(&f), Some(("default", "web-1", "nginx", true)));
        assert_eq!(f.node.as_deref(), Some("ip-10-0-1-5.ec2.internal"));
        // not a numbered log file: no coordinates from the pods/ rule
        let f = path_facts(Path::new("/var/log/pods/default_web-1_u1/nginx/notes.txt"));
        assert_eq!((f.kind, coords(&f)), (None, None));
    }

    #[test]
    fn kubelet_container_links() {
        let p = format!("/var/log/containers/web-7f9c_shop_nginx-{ID}.log");
        let f = path_facts(Path::new(&p));
        assert_eq!(f.kind, Some(Kind::Container));
        assert_eq!(coords(&f), Some(("shop", "web-7f9c", "nginx", true)));
        // a container name with dashes
        let p = format!("containers/api-0_prod_side-car-{ID}.log.zst");
        assert_eq!(
            coords(&path_facts(Path::new(&p))),
            Some(("prod", "api-0", "side-car", true))
        );
        // a short id is not kubelet's
        let f = path_facts(Path::new("containers/a_b_c-1234.log"));
        assert_eq!(f.kind, None);
        assert_eq!(coords(&f), Some(("a", "b", "c-1234", false)));
    }

    #[test]
    fn idless_names_and_others() {
        let f = path_facts(Path::new("log/core/core_base_fluent-bit.log"));
        assert_eq!(f.kind, None);
        assert_eq!(coords(&f), Some(("core", "base", "fluent-bit", false)));
        for p in [
            "node_logs/loghub/Linux/Linux_2k.log",
            "a/b/My_App_Log.log",
            "a_b_c_d.log",
            "a_b_c.txt",
        ] {
            assert_eq!(path_facts(Path::new(p)), PathFacts::default(), "{p}");
        }
        assert_eq!(path_facts(Path::new("")), PathFacts::default());
        assert_eq!(path_facts(Path::new("/")), PathFacts::default());
    }

    #[test]
    fn nodes_prefix() {
        let f = path_facts(Path::new("/tmp/demo/nodes/ip-10-0-0-1/var/log/secure"));
        assert_eq!(f.node.as_deref(), Some("ip-10-0-0-1"));
        assert_eq!(f.kind, None);
        // `nodes` as the file's own folder names no node
        assert_eq!(path_facts(Path::new("nodes/list.log")).node, None);
        assert_eq!(path_facts(Path::new("nodes")).node, None);
    }

    #[test]
    fn aws_objects() {
        let f = path_facts(Path::new(
            "bucket/AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/05/01/123456789012_vpcflowlogs_us-east-1_fl-1_20240501T1005Z_ab12.log.gz",
        ));
        assert_eq!(f.kind, Some(Kind::VpcFlow));
        let f = path_facts(Path::new(
            "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/x.json.gz",
        ));
        assert_eq!(f.kind, Some(Kind::CloudTrail));
        let f = path_facts(Path::new(
            "AWSLogs/o-abc123/123456789012/CloudTrail/eu-west-1/2024/05/01/x.json.gz",
        ));
        assert_eq!(f.kind, Some(Kind::CloudTrail));
        // digests are not trail records
        let f = path_facts(Path::new(
            "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/05/01/x.json.gz",
        ));
        assert_eq!(f.kind, None);
        // the service folder must be below the account
        assert_eq!(
            path_facts(Path::new("AWSLogs/CloudTrail/x.json")).kind,
            None
        );
        assert_eq!(
            path_facts(Path::new("var/log/kube-apiserver-audit.log.gz")).kind,
            Some(Kind::Audit)
        );
    }
}
