//! What every exported pod shares, secure by default: not root, no privilege escalation, no
//! capabilities, seccomp's runtime default, a read-only root filesystem with a writable `/tmp`,
//! and no service-account token unless the pod needs one.

use super::super::yaml::{s, strs, Map, Yaml};
use kelpie_core::AppSpec;

/// The user a container runs as when the file names none: not root, and above the ids a host
/// gives its own users, so a container escaping its namespace is nobody on the node.
pub(super) const DEFAULT_UID: i64 = 10001;

/// The pod's `securityContext`: its user and group (the file's numeric `uid`/`gid`, else
/// [`DEFAULT_UID`]), never root, seccomp's runtime default.
pub(super) fn pod_security(app: Option<&AppSpec>, warnings: &mut Vec<String>) -> Yaml {
    let mut security = Map::new();
    security.put("runAsNonRoot", Yaml::Bool(true));
    let mut user = DEFAULT_UID;
    let mut group = DEFAULT_UID;
    for (field, value, id) in app
        .map(|app| {
            [
                ("uid", &app.user, &mut user),
                ("gid", &app.group, &mut group),
            ]
        })
        .into_iter()
        .flatten()
    {
        if let Some(value) = value {
            match value.parse::<i64>() {
                Ok(number) => *id = number,
                Err(_) => warnings.push(format!(
                    "app `{}`: field `{field}` (`{value}`) is a name; Kubernetes needs a number, so {DEFAULT_UID} is used",
                    app.map(|a| a.name.as_str()).unwrap_or_default()
                )),
            }
        }
    }
    security.put("runAsUser", Yaml::Int(user));
    security.put("runAsGroup", Yaml::Int(group));
    let mut seccomp = Map::new();
    seccomp.put("type", s("RuntimeDefault"));
    security.put("seccompProfile", seccomp.build());
    security.build()
}

/// The container's `securityContext`: no privilege escalation, every capability dropped, a
/// read-only root filesystem (the app writes to `/tmp`, an `emptyDir`).
pub(super) fn container_security() -> Yaml {
    let mut capabilities = Map::new();
    capabilities.put("drop", strs(["ALL"]));
    let mut security = Map::new();
    security.put("allowPrivilegeEscalation", Yaml::Bool(false));
    security.put("privileged", Yaml::Bool(false));
    security.put("readOnlyRootFilesystem", Yaml::Bool(true));
    security.put("capabilities", capabilities.build());
    security.build()
}

const TMP_VOLUME: &str = "tmp";

/// `/tmp`, writable, in the container.
pub(super) fn tmp_mount() -> Yaml {
    let mut mount = Map::new();
    mount.put("name", s(TMP_VOLUME));
    mount.put("mountPath", s("/tmp"));
    mount.build()
}

/// The pod's volumes: the `emptyDir` behind `/tmp`.
pub(super) fn volumes() -> Yaml {
    let mut volume = Map::new();
    volume.put("name", s(TMP_VOLUME));
    volume.put("emptyDir", Map::new().build());
    Yaml::Seq(vec![volume.build()])
}

/// Puts the pod-wide settings into `pod`: no token unless `service_account` (the only pods
/// that call the API are the restart CronJob's), its security context and volumes.
pub(super) fn secure(
    pod: &mut Map,
    app: Option<&AppSpec>,
    service_account: Option<&str>,
    warnings: &mut Vec<String>,
) {
    match service_account {
        Some(account) => {
            pod.put("serviceAccountName", s(account));
            pod.put("automountServiceAccountToken", Yaml::Bool(true));
        }
        None => {
            pod.put("automountServiceAccountToken", Yaml::Bool(false));
        }
    }
    pod.put("securityContext", pod_security(app, warnings));
    pod.put("volumes", volumes());
}
