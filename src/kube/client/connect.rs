//! Connecting the way kubectl does: `--kubeconfig FILE`, else `KUBECONFIG` (a list of files,
//! merged, missing ones skipped), else `~/.kube/config`, else the pod's service account when
//! running inside a cluster; `--context` picks a context, else the current one.

use super::error::{chain, KubeError};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::ffi::OsString;
use std::path::PathBuf;

/// Which cluster to talk to, as kubectl's `--kubeconfig` and `--context` say it. `None` for both
/// means what kubectl would use: `KUBECONFIG`, `~/.kube/config`, or the pod's service account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeTarget {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// The parts of the process environment that choose the configuration, read once so the choice
/// can be tested without changing the environment.
#[derive(Debug, Clone, Default)]
struct Env {
    kubeconfig: Option<OsString>,
    home: Option<PathBuf>,
    in_cluster: bool,
}

impl Env {
    fn from_process() -> Env {
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        Env {
            kubeconfig: std::env::var_os("KUBECONFIG"),
            home,
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
                && std::env::var_os("KUBERNETES_SERVICE_PORT").is_some(),
        }
    }

    fn default_path(&self) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(".kube").join("config"))
    }
}

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// Kubeconfig files to merge in order, and how to name them in messages.
    Files {
        files: Vec<PathBuf>,
        origin: String,
    },
    InCluster,
}

/// kubectl's order: `--kubeconfig` (must exist), `KUBECONFIG` (files that don't exist are
/// skipped), `~/.kube/config`, then in-cluster.
fn locate(t: &KubeTarget, env: &Env) -> Result<Source, KubeError> {
    if let Some(path) = &t.kubeconfig {
        let origin = format!("kubeconfig {} (--kubeconfig)", path.display());
        if !path.is_file() {
            return Err(KubeError::Kubeconfig {
                origin,
                message: "no such file".to_owned(),
            });
        }
        return Ok(Source::Files {
            files: vec![path.clone()],
            origin,
        });
    }
    if let Some(list) = env.kubeconfig.as_ref().filter(|v| !v.is_empty()) {
        let named: Vec<PathBuf> = std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let files: Vec<PathBuf> = named.iter().filter(|p| p.is_file()).cloned().collect();
        let shown = named
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if files.is_empty() {
            return Err(KubeError::Kubeconfig {
                origin: format!("KUBECONFIG ({shown})"),
                message: "none of these files exists".to_owned(),
            });
        }
        let origin = if named.len() == 1 {
            format!("kubeconfig {shown} (KUBECONFIG)")
        } else {
            format!("kubeconfig files {shown} (KUBECONFIG)")
        };
        return Ok(Source::Files { files, origin });
    }
    if let Some(path) = env.default_path().filter(|p| p.is_file()) {
        let origin = format!("kubeconfig {}", path.display());
        return Ok(Source::Files {
            files: vec![path],
            origin,
        });
    }
    if env.in_cluster {
        if let Some(context) = &t.context {
            return Err(KubeError::ContextWithoutKubeconfig {
                context: context.clone(),
                why: "running in a pod with no KUBECONFIG and no ~/.kube/config",
            });
        }
        return Ok(Source::InCluster);
    }
    Err(KubeError::NoConfig {
        default_path: env.default_path(),
    })
}

/// The client configuration for `t`, and how to name where it came from in messages.
async fn config_with_origin(t: &KubeTarget, env: &Env) -> Result<(kube::Config, String), KubeError> {
    let (files, origin) = match locate(t, env)? {
        Source::InCluster => {
            let config = kube::Config::incluster().map_err(|e| KubeError::InCluster { message: chain(&e) })?;
            return Ok((config, "in-cluster service account".to_owned()));
        }
        Source::Files { files, origin } => (files, origin),
    };
    let mut merged: Option<Kubeconfig> = None;
    for file in &files {
        let read = Kubeconfig::read_from(file).map_err(|e| KubeError::Kubeconfig {
            origin: format!("kubeconfig {}", file.display()),
            message: chain(&e),
        })?;
        merged = Some(match merged {
            None => read,
            Some(m) => m.merge(read).map_err(|e| KubeError::Kubeconfig {
                origin: origin.clone(),
                message: chain(&e),
            })?,
        });
    }
    let kubeconfig = merged.unwrap_or_default();
    let known: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let context = match t.context.as_ref().or(kubeconfig.current_context.as_ref()) {
        Some(c) if !c.is_empty() => c.clone(),
        _ => return Err(KubeError::NoContext { origin, known }),
    };
    if !known.contains(&context) {
        return Err(KubeError::UnknownContext { context, origin, known });
    }
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let origin = format!("context '{context}' of {origin}");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| KubeError::Kubeconfig {
            origin: origin.clone(),
            message: chain(&e),
        })?;
    Ok((config, origin))
}

/// The client configuration kubectl would use for `t` (see [`KubeTarget`]). Its
/// `default_namespace` is the context's namespace, what `-n` defaults to.
pub async fn config(t: &KubeTarget) -> Result<kube::Config, KubeError> {
    Ok(config_with_origin(t, &Env::from_process()).await?.0)
}

/// A client for the cluster `t` names. Nothing is sent yet: an unreachable server shows up as
/// [`KubeError::Unreachable`] on the first request.
pub async fn client(t: &KubeTarget) -> Result<kube::Client, KubeError> {
    let (config, origin) = config_with_origin(t, &Env::from_process()).await?;
    client_from_config(config, &origin)
}

/// A client for the cluster `t` names, and the namespace its context defaults to (what `-n`
/// defaults to, as in kubectl).
pub async fn connect(t: &KubeTarget) -> Result<(kube::Client, String), KubeError> {
    let (config, origin) = config_with_origin(t, &Env::from_process()).await?;
    let namespace = config.default_namespace.clone();
    Ok((client_from_config(config, &origin)?, namespace))
}

/// A client for an explicit configuration (a test's fake server, a proxy URL).
pub fn client_from_config(config: kube::Config, origin: &str) -> Result<kube::Client, KubeError> {
    kube::Client::try_from(config).map_err(|e| KubeError::Client {
        origin: origin.to_owned(),
        message: chain(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mtlscope-kube-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn kubeconfig_flag_wins_then_env_list_then_home_then_in_cluster() {
        let dir = scratch("locate");
        let a = dir.join("a");
        let b = dir.join("b");
        fs::write(&a, "").unwrap();
        fs::write(&b, "").unwrap();
        let home = dir.join("home");
        fs::create_dir_all(home.join(".kube")).unwrap();
        fs::write(home.join(".kube/config"), "").unwrap();
        let missing = dir.join("missing");
        let list = std::env::join_paths([&missing, &a, &b]).unwrap();
        let env = Env {
            kubeconfig: Some(list),
            home: Some(home.clone()),
            in_cluster: true,
        };
        let flag = KubeTarget {
            kubeconfig: Some(b.clone()),
            context: None,
        };
        assert!(matches!(locate(&flag, &env).unwrap(), Source::Files { files, .. } if files == vec![b.clone()]));
        // KUBECONFIG: listed files merged in order, missing ones skipped (as kubectl does).
        let none = KubeTarget::default();
        assert!(
            matches!(locate(&none, &env).unwrap(), Source::Files { files, .. } if files == vec![a.clone(), b.clone()])
        );
        let env_home = Env {
            kubeconfig: None,
            ..env.clone()
        };
        let default_file = vec![home.join(".kube/config")];
        assert!(matches!(locate(&none, &env_home).unwrap(), Source::Files { files, .. } if files == default_file));
        let env_pod = Env {
            kubeconfig: None,
            home: Some(dir.join("nohome")),
            in_cluster: true,
        };
        assert_eq!(locate(&none, &env_pod).unwrap(), Source::InCluster);
        let ctx = KubeTarget {
            kubeconfig: None,
            context: Some("prod".into()),
        };
        assert!(locate(&ctx, &env_pod)
            .unwrap_err()
            .to_string()
            .contains("--context prod needs a kubeconfig"));
        let nothing = Env {
            in_cluster: false,
            ..env_pod
        };
        let e = locate(&none, &nothing).unwrap_err().to_string();
        assert!(e.starts_with("no Kubernetes configuration: "), "{e}");
        assert!(e.contains("pass --kubeconfig FILE or set KUBECONFIG"), "{e}");
        let only_missing = Env {
            kubeconfig: Some(missing.clone().into_os_string()),
            ..Env::default()
        };
        let e = locate(&none, &only_missing).unwrap_err().to_string();
        assert!(e.contains("none of these files exists"), "{e}");
        let flag_missing = KubeTarget {
            kubeconfig: Some(missing.clone()),
            context: None,
        };
        let e = locate(&flag_missing, &env).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("kubeconfig {} (--kubeconfig): no such file", missing.display())
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
