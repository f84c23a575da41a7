//! One capture session: create the helper pods, wait until they run, upload the agent into
//! them (without `--image`), start an agent per target pod, hand their events to the output
//! until they end or a signal stops them, and delete the helpers on every way out.

use super::cluster::Known;
use super::options::{SniffFormat, SniffOptions};
use super::output::Results;
use super::plan::{agent_command, Capture};
use super::signals::{signal, SignalKind};
use super::stream::{spawn_streams, Event};
use super::wait::{agent_failure, helper_ended, wait_running};
use crate::kube::client;
use crate::kube::labels::{CONTAINER, LABEL_SESSION};
use crate::kube::upload::{self, Agent};
use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// A signal arrived before the capture started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Interrupted(&'static str);

/// As a shell reports a process ended by Ctrl-C.
pub(super) const EXIT_INTERRUPTED: i32 = 130;

/// The helper pods created so far, to delete on every way out, and the tasks that read the
/// agents' streams, to let them finish (a `-w` file complete) once the helpers are gone.
pub(super) struct Session {
    pub(super) client: kube::Client,
    pub(super) namespace: String,
    /// The value of the session label on this run's helpers.
    pub(super) id: String,
    pub(super) created: Vec<String>,
    pub(super) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How long one delete may take before the helper is reported as left behind.
const DELETE_TIMEOUT: Duration = Duration::from_secs(20);

impl Session {
    /// Delete the helpers this run created: by name, and by the session label too, which also
    /// finds a helper whose create was sent but whose answer never arrived.
    pub(super) async fn delete_all(&mut self) -> Result<()> {
        let mut names = std::mem::take(&mut self.created);
        let selector = format!("{}={}", LABEL_SESSION, self.id);
        let listed = tokio::time::timeout(
            DELETE_TIMEOUT,
            client::list_pods_labelled(&self.client, Some(&self.namespace), &selector),
        )
        .await;
        if let Ok(Ok(pods)) = listed {
            names.extend(pods.into_iter().filter_map(|p| p.metadata.name));
        }
        names.sort();
        names.dedup();
        let mut failed = Vec::new();
        for name in names {
            let why =
                match tokio::time::timeout(DELETE_TIMEOUT, client::delete_pod(&self.client, &self.namespace, &name))
                    .await
                {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer from the API server in {}s", DELETE_TIMEOUT.as_secs()),
                };
            failed.push(format!(
                "{name}: {why} (delete it with `kubectl delete pod -n {} {name}` or `kubectl mtlscope cleanup -n {}`)",
                self.namespace, self.namespace
            ));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("helper pods left behind: {}", failed.join("; "))
        }
    }

    /// Wait (briefly) for the stream readers: with the helpers deleted their streams end.
    pub(super) async fn drain(&mut self) {
        for t in std::mem::take(&mut self.tasks) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// How the run was stopped by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    No,
    /// First signal: the agents were asked to stop.
    Asked,
}

/// `agents`: the agent to upload into each node's helper (none with `--image`); `image`: the
/// helpers' image, for the upload's errors.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    session: &mut Session,
    helpers: &[(String, Pod)],
    agents: &BTreeMap<String, Agent>,
    image: &str,
    captures: &mut [Capture],
    opts: &SniffOptions,
    format: SniffFormat,
    cluster: Option<&Known>,
) -> Result<i32> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    macro_rules! interruptible {
        ($fut:expr) => {
            tokio::select! {
                r = $fut => r,
                _ = sigint.recv() => return Err(Interrupted("interrupted").into()),
                _ = sigterm.recv() => return Err(Interrupted("terminated").into()),
                _ = sighup.recv() => return Err(Interrupted("hung up").into()),
            }
        };
    }

    // Create the helpers, then wait until each one runs. A create is never abandoned half way
    // (the pod could exist without this run knowing its name): a signal that arrives meanwhile
    // is seen by the next interruptible step.
    for (node, pod) in helpers {
        let created = client::create_pod(&session.client, &session.namespace, pod)
            .await
            .with_context(|| format!("creating the helper pod for node {node}"))?;
        let name = created.metadata.name.clone().unwrap_or_default();
        session.created.push(name.clone());
        for c in captures.iter_mut().filter(|c| &c.node == node) {
            c.helper = Some(name.clone());
        }
    }
    for name in session.created.clone() {
        interruptible!(wait_running(
            &session.client,
            &session.namespace,
            &name,
            opts.running_timeout
        ))?;
    }

    // Upload the agent into each helper, all at once; each upload is checked in its pod.
    let mut uploads = Vec::new();
    for (node, _) in helpers {
        let (Some(agent), Some(helper)) = (
            agents.get(node),
            captures.iter().find(|c| &c.node == node).and_then(|c| c.helper.clone()),
        ) else {
            continue;
        };
        let (client, namespace, image, agent) = (
            session.client.clone(),
            session.namespace.clone(),
            image.to_owned(),
            agent.clone(),
        );
        let task = tokio::spawn(async move {
            let took = upload::upload(&client, &namespace, &helper, &image, &agent).await;
            (helper, agent, took)
        });
        uploads.push(AbortOnDrop(task));
    }
    for task in &mut uploads {
        let (helper, agent, took) = interruptible!(&mut task.0).context("the upload task failed")?;
        let took = took?;
        eprintln!(
            "mtlscope: note: agent uploaded into helper pod {}/{helper} in {:.2} s: {}",
            session.namespace,
            took.as_secs_f64(),
            agent.describe()
        );
    }
    drop(uploads);

    // Start one agent per target pod.
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut stdins = Vec::new();
    for (i, c) in captures.iter().enumerate() {
        let helper = c.helper.clone().unwrap_or_default();
        let mut attached = interruptible!(client::exec(
            &session.client,
            &session.namespace,
            &helper,
            CONTAINER,
            agent_command(c, opts)
        ))
        .with_context(|| format!("starting the agent for {} in helper pod {helper}", c.label()))?;
        stdins.push(attached.stdin());
        let outputs = spawn_streams(i, &mut attached, c, opts, tx.clone())?;
        let status = attached.take_status();
        let done = tx.clone();
        let task = tokio::spawn(async move {
            let outcome = match status {
                Some(s) => match s.await {
                    Some(st) if st.status.as_deref() == Some("Success") => Ok(()),
                    Some(st) => Err(st.message.unwrap_or_else(|| "the agent failed".to_owned())),
                    None => Ok(()),
                },
                None => Ok(()),
            };
            // Keep the process (and its stream) alive until the status has arrived, and report
            // the end only after everything the agent wrote has been handed on.
            let _ = attached.join().await;
            for o in outputs {
                let _ = o.await;
            }
            let _ = done.send(Event::Done(i, outcome));
        });
        session.tasks.push(task);
    }
    drop(tx);

    let mut out = Results::new(format, captures);
    let mut stop = Stop::No;
    let mut grace: Option<tokio::time::Instant> = None;
    let mut running = captures.len();
    let mut failures: Vec<String> = Vec::new();
    let started = Instant::now();
    while running > 0 {
        let deadline = grace.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        let signalled = tokio::select! {
            ev = rx.recv() => {
                match ev {
                    None => break,
                    Some(Event::Flow(i, f)) => out.flow(i, *f, cluster)?,
                    Some(Event::Summary(i, s)) => out.summary(i, *s),
                    Some(Event::Capture(i, stats)) => out.kernel[i] = Some(stats),
                    Some(Event::Stderr(i, line)) => out.agent_said(i, &line, captures),
                    Some(Event::Done(i, r)) => {
                        running -= 1;
                        // A helper that ended (OOMKilled, evicted) took all its agents with it:
                        // say why, at once.
                        let helper = captures[i].helper.clone().unwrap_or_default();
                        if r.is_err() || out.summaries[i].is_none() {
                            if let Some(why) = helper_ended(&session.client, &session.namespace, &helper).await {
                                bail!(
                                    "helper pod {}/{helper} on node {} stopped, ending the agents in it: {why}",
                                    session.namespace,
                                    captures[i].node
                                );
                            }
                        }
                        match r {
                            Err(e) => failures.push(format!(
                                "agent for {} failed: {}",
                                captures[i].label(),
                                agent_failure(&session.client, &captures[i].node, &format!("{e}{}", out.last_words(i)))
                                    .await,
                            )),
                            Ok(()) if out.summaries[i].is_none() => eprintln!(
                                "mtlscope: warning: the stream from the agent for {} ended before its summary (the \
                                 connection to the API server or the helper pod was lost): connections still open \
                                 there are not reported",
                                captures[i].label()
                            ),
                            Ok(()) => {}
                        }
                    }
                }
                false
            }
            _ = sigint.recv() => true,
            _ = sigterm.recv() => true,
            _ = sighup.recv() => true,
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!("mtlscope: the agents did not stop within 10 s; stopping without their last connections");
                break;
            }
        };
        if signalled {
            if stop == Stop::Asked {
                eprintln!("mtlscope: stopping now");
                break;
            }
            stop = Stop::Asked;
            eprintln!("mtlscope: stopping the capture (Ctrl-C again to stop at once)");
            for s in stdins.iter_mut().flatten() {
                let _ = s.write_all(b"stop\n").await;
                let _ = s.flush().await;
            }
            grace = Some(tokio::time::Instant::now() + Duration::from_secs(10));
        }
        out.tick(started, running);
    }
    out.finish(captures)?;
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(crate::report::EXIT_OK)
}

/// An upload still running when the run ends another way (an error, a signal) stops with it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
