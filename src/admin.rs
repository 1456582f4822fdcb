//! The admin HTTP endpoint (actix-web, one worker), bound to `admin.host:admin.port`:
//!
//! - `GET /healthz`: the process and its actor system answer (200), or the supervisor does not
//!   answer within 2 s (503);
//! - `GET /readyz`: 200 once every assigned partition has a running partition actor whose
//!   reader has answered; 503 with the reason otherwise (starting, waiting for an assignment,
//!   partitions not heard from yet or restarting, draining);
//! - `GET /livez`: 503 when the service is wedged in a way a restart would cure: a partition
//!   being read has not polled for `admin.poll_ttl_ms`, a flush has run for
//!   `admin.flush_ttl_ms`, the stall watchdog restarted a partition twice in a row without
//!   it moving, or the actor system does not answer (Karafka's liveness listener, with its
//!   `polling_ttl` and `consuming_ttl`, is the model);
//! - `GET /metrics`: every figure of the metrics actor in the Prometheus text format, encoded
//!   by `prometheus-client` ([`crate::prometheus`]);
//! - `GET /status`: JSON: the model, the tree's and intake's states, and per partition its
//!   actor state, position, committed offset, lag, leader, event time, open windows, restarts
//!   and last failure.
//!
//! The endpoint starts before the service connects to Kafka (so an orchestrator sees it
//! starting) and stops after the service has drained.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use actors::metrics::GetMetrics;
use actors::supervisor::{GetStatus, RootSupervisor, ServiceStatus};
use actors::topic::PartitionId;
use serde::Serialize;

use crate::settings::{AdminConfig, Model};

/// How long a handler waits for the actor system.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the service is in its life, as the endpoint sees it.
#[derive(Debug, Clone, Default)]
enum Phase {
    /// Settings read; connecting to Kafka, looking up partitions and commits.
    #[default]
    Starting,
    /// The actor tree runs.
    Running(Addr<RootSupervisor>),
    /// Stopping: intake stopped, windows being written and committed.
    Draining(Addr<RootSupervisor>),
}

/// What the handlers share: the model, the liveness limits and the service's phase.
#[derive(Debug)]
pub struct AdminState {
    model: Model,
    limits: Liveness,
    phase: RwLock<Phase>,
}

/// When `/livez` fails.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// A partition being read has not polled for this long.
    pub poll_ttl: Duration,
    /// A flush has run this long.
    pub flush_ttl: Duration,
}

impl AdminState {
    /// A service of `model`, starting.
    pub fn new(model: Model, config: &AdminConfig) -> Arc<Self> {
        Arc::new(AdminState {
            model,
            limits: Liveness {
                poll_ttl: Duration::from_millis(config.poll_ttl_ms),
                flush_ttl: Duration::from_millis(config.flush_ttl_ms),
            },
            phase: RwLock::new(Phase::Starting),
        })
    }

    /// The actor tree runs under `supervisor`.
    pub fn running(&self, supervisor: Addr<RootSupervisor>) {
        *self.phase.write().unwrap_or_else(|p| p.into_inner()) = Phase::Running(supervisor);
    }

    /// The service is draining.
    pub fn draining(&self) {
        let mut phase = self.phase.write().unwrap_or_else(|p| p.into_inner());
        if let Phase::Running(supervisor) = &*phase {
            *phase = Phase::Draining(supervisor.clone());
        }
    }

    fn phase(&self) -> Phase {
        self.phase.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The running endpoint.
pub struct AdminServer {
    address: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl AdminServer {
    /// Binds the endpoint and starts serving on the current actix system.
    ///
    /// # Errors
    /// The address cannot be bound (in use, not local).
    pub fn start(config: &AdminConfig, state: Arc<AdminState>) -> Result<Self, AdminError> {
        let wanted = config.address().map_err(AdminError::Config)?;
        let data = web::Data::from(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/livez", web::get().to(livez))
                .route("/metrics", web::get().to(metrics))
                .route("/status", web::get().to(status))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(wanted)
        .map_err(|source| AdminError::Bind {
            address: wanted,
            source,
        })?;
        let address = server.addrs().first().copied().unwrap_or(wanted);
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        tracing::info!(%address, "Admin endpoint listening (/healthz /readyz /metrics /status).");
        Ok(AdminServer { address, handle })
    }

    /// The bound address (with the port taken when `admin.port` is 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for AdminServer {
    /// Stops serving (the service has stopped, or did not start).
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(false).await });
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `admin.host` is invalid.
    #[error(transparent)]
    Config(actors::config::ConfigError),
    /// The address could not be bound.
    #[error("cannot serve the admin endpoint on {address} (admin.host, admin.port)")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn text(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body.into())
}

async fn ask_status(supervisor: &Addr<RootSupervisor>) -> Option<ServiceStatus> {
    tokio::time::timeout(ASK_TIMEOUT, supervisor.send(GetStatus))
        .await
        .ok()?
        .ok()
}

async fn healthz(state: web::Data<AdminState>) -> HttpResponse {
    match state.phase() {
        Phase::Starting => text(StatusCode::OK, "ok: starting\n"),
        Phase::Running(supervisor) | Phase::Draining(supervisor) => {
            match tokio::time::timeout(ASK_TIMEOUT, supervisor.send(GetMetrics)).await {
                Ok(Ok(_)) => text(StatusCode::OK, "ok\n"),
                _ => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the actor system does not answer\n",
                ),
            }
        }
    }
}

/// Lag of each owned partition: the log's end minus the position, the end being the later of
/// the broker's answer to the watchdog's look-up and the high watermark of the last fetch (a
/// paused partition fetches nothing, so only the former moves on). Partitions no longer owned
/// have none.
pub fn owned_lags(status: &ServiceStatus) -> std::collections::BTreeMap<PartitionId, i64> {
    status
        .intake
        .partitions
        .keys()
        .filter_map(|partition| {
            let metrics = status.metrics.partitions.get(partition)?;
            let position = metrics.position?;
            let fetched_end = metrics.lag.map(|lag| position + lag);
            let end = match (fetched_end, status.log_ends.get(partition)) {
                (Some(a), Some(b)) => a.max(*b),
                (Some(a), None) => a,
                (None, Some(b)) => *b,
                (None, None) => return None,
            };
            Some((*partition, (end - position).max(0)))
        })
        .collect()
}

/// Why the service is not ready, if it is not: `None` when it is.
pub fn not_ready(status: &ServiceStatus) -> Option<String> {
    if status.tree != "running" {
        return Some(format!("the actor tree is {}", status.tree));
    }
    if status.intake.state != "running" {
        return Some(format!("the intake is {}", status.intake.state));
    }
    if !status.intake.assigned {
        return Some("waiting for an assignment from the group coordinator".into());
    }
    // Only a group member has a join state that means something (a client that assigns its
    // own partitions stays in `init`).
    if let Some(join_state) = status
        .metrics
        .group_join_state
        .as_deref()
        .filter(|s| *s != "steady" && status.intake.member.is_some())
    {
        return Some(format!("rebalancing (join state {join_state})"));
    }
    let mut waiting = Vec::new();
    for (partition, state) in &status.intake.partitions {
        let heard = status
            .metrics
            .partitions
            .get(partition)
            .is_some_and(|m| m.heard);
        let restarting = status.restarting.contains(partition);
        if restarting || !matches!(*state, "reading" | "paused" | "finished") || !heard {
            let why = if restarting {
                "restarting"
            } else if !heard && *state == "reading" {
                "no first fetch yet"
            } else {
                state
            };
            waiting.push(format!("{partition} ({why})"));
        }
    }
    (!waiting.is_empty()).then(|| format!("partitions not ready: {}", waiting.join(", ")))
}

/// Why the service is wedged in a way a restart would cure, if it is: `None` when it is not.
pub fn not_live(status: &ServiceStatus, limits: Liveness) -> Option<String> {
    let mut problems = Vec::new();
    let silent: Vec<String> = status
        .intake
        .partitions
        .iter()
        .filter(|(_, state)| **state == "reading")
        .filter_map(|(partition, _)| {
            let since = status.intake.since_poll_ms.get(partition).copied()?;
            (since >= limits.poll_ttl.as_millis() as u64)
                .then(|| format!("{partition} ({since} ms)"))
        })
        .collect();
    if !silent.is_empty() {
        problems.push(format!(
            "no poll for admin.poll_ttl_ms: {}",
            silent.join(", ")
        ));
    }
    if let Some(ms) = status
        .windows
        .flush_running_ms
        .filter(|ms| *ms >= limits.flush_ttl.as_millis() as u64)
    {
        problems.push(format!("a flush has run for {ms} ms (admin.flush_ttl_ms)"));
    }
    if !status.stuck.is_empty() {
        let stuck: Vec<String> = status.stuck.iter().map(ToString::to_string).collect();
        problems.push(format!(
            "restarted by the stall watchdog twice in a row without moving: {}",
            stuck.join(", ")
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

async fn livez(state: web::Data<AdminState>) -> HttpResponse {
    let supervisor = match state.phase() {
        Phase::Starting => return text(StatusCode::OK, "ok: starting\n"),
        Phase::Running(supervisor) | Phase::Draining(supervisor) => supervisor,
    };
    let Some(status) = ask_status(&supervisor).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the actor system does not answer\n",
        );
    };
    match not_live(&status, state.limits) {
        None => text(StatusCode::OK, "ok\n"),
        Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    let supervisor = match state.phase() {
        Phase::Starting => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: connecting to Kafka\n",
            )
        }
        Phase::Draining(_) => return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        Phase::Running(supervisor) => supervisor,
    };
    let Some(status) = ask_status(&supervisor).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the actor system does not answer\n",
        );
    };
    match not_ready(&status) {
        None => text(
            StatusCode::OK,
            format!("ready: {} partitions\n", status.intake.partitions.len()),
        ),
        Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    let status = match state.phase() {
        Phase::Starting => ServiceStatus::default(),
        Phase::Running(supervisor) | Phase::Draining(supervisor) => {
            match ask_status(&supervisor).await {
                Some(status) => status,
                None => {
                    return text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the actor system does not answer\n",
                    )
                }
            }
        }
    };
    match crate::prometheus::encode(&status, &owned_lags(&status)) {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(body),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}

/// One partition in `/status`.
#[derive(Debug, Serialize)]
struct PartitionStatus {
    /// The partition actor's state.
    state: &'static str,
    position: Option<i64>,
    committed: Option<i64>,
    lag: Option<i64>,
    leader: Option<i32>,
    /// The highest event time read.
    event_time: Option<f64>,
    /// Windows ending (plus lateness) at or below this are written.
    closed_below: Option<f64>,
    open_windows: usize,
    /// Distinct uids it holds in open windows.
    open_uids: u64,
    idle: bool,
    paused: bool,
    restarts: u64,
    last_failure: Option<String>,
}

/// `/status`.
#[derive(Debug, Serialize)]
struct Status {
    model: &'static str,
    /// Group model: the generation and this member's id.
    group: Option<actors::ports::GroupMember>,
    phase: &'static str,
    tree: &'static str,
    intake: &'static str,
    ready: bool,
    not_ready: Option<String>,
    watermark: Option<f64>,
    open_windows: usize,
    open_window_bytes: u64,
    frames: u64,
    /// Total lag over owned partitions.
    lag: i64,
    /// The owned partition furthest behind (the largest lag), and its lag.
    furthest_behind: Option<Behind>,
    partitions: std::collections::BTreeMap<PartitionId, PartitionStatus>,
}

/// The partition furthest behind.
#[derive(Debug, Serialize)]
struct Behind {
    partition: PartitionId,
    lag: i64,
}

fn status_of(model: Model, phase: &'static str, status: &ServiceStatus) -> Status {
    let lags = owned_lags(status);
    let partitions = status
        .intake
        .partitions
        .iter()
        .map(|(partition, state)| {
            let metrics = status
                .metrics
                .partitions
                .get(partition)
                .cloned()
                .unwrap_or_default();
            let windows = status.windows.partitions.get(partition);
            let last_failure = status
                .metrics
                .restart_log
                .iter()
                .rev()
                .find(|r| r.partition == *partition)
                .map(|r| r.cause.to_string());
            let restarting = status.restarting.contains(partition);
            let entry = PartitionStatus {
                state: if restarting { "restarting" } else { state },
                position: metrics.position,
                committed: windows.and_then(|w| w.committed),
                lag: lags.get(partition).copied(),
                leader: metrics.leader,
                event_time: windows.and_then(|w| w.standing.max_ts),
                closed_below: windows.and_then(|w| w.standing.closed_below),
                open_windows: windows.map_or(0, |w| w.standing.open_windows),
                open_uids: windows.map_or(0, |w| w.standing.open_uids),
                idle: windows.is_some_and(|w| w.standing.idle),
                paused: metrics.paused,
                restarts: metrics.restarts,
                last_failure,
            };
            (*partition, entry)
        })
        .collect();
    let not_ready = not_ready(status);
    Status {
        model: model.as_str(),
        group: status.intake.member.clone(),
        phase,
        tree: status.tree,
        intake: status.intake.state,
        ready: not_ready.is_none(),
        not_ready,
        watermark: status.windows.watermark,
        open_windows: status.windows.open_windows,
        open_window_bytes: status.windows.open_bytes,
        frames: status.metrics.frames,
        lag: lags.values().sum(),
        furthest_behind: lags
            .iter()
            .max_by_key(|(p, lag)| (**lag, std::cmp::Reverse(**p)))
            .map(|(p, lag)| Behind {
                partition: *p,
                lag: *lag,
            }),
        partitions,
    }
}

async fn status(state: web::Data<AdminState>) -> HttpResponse {
    let (phase, supervisor) = match state.phase() {
        Phase::Starting => {
            return HttpResponse::Ok().json(serde_json::json!({
                "model": state.model.as_str(),
                "phase": "starting",
            }))
        }
        Phase::Running(supervisor) => ("running", supervisor),
        Phase::Draining(supervisor) => ("draining", supervisor),
    };
    match ask_status(&supervisor).await {
        Some(status) => HttpResponse::Ok().json(status_of(state.model, phase, &status)),
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the actor system does not answer\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use actors::intake::IntakeStatus;
    use actors::metrics::PartitionMetrics;

    use super::*;

    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    /// A running service owning partitions 0 and 1, both read and heard from.
    fn ready() -> ServiceStatus {
        let mut status = ServiceStatus {
            tree: "running",
            intake: IntakeStatus {
                state: "running",
                assigned: true,
                partitions: [(p(0), "reading"), (p(1), "paused")].into(),
                since_poll_ms: BTreeMap::new(),
                rebalances: Default::default(),
                member: None,
            },
            ..ServiceStatus::default()
        };
        for partition in [p(0), p(1)] {
            status.metrics.partitions.insert(
                partition,
                PartitionMetrics {
                    heard: true,
                    ..PartitionMetrics::default()
                },
            );
        }
        status
    }

    #[test]
    fn ready_only_when_every_assigned_partition_is_read_and_heard_from() {
        assert_eq!(not_ready(&ready()), None);
        let mut status = ready();
        status.tree = "draining";
        assert_eq!(not_ready(&status).unwrap(), "the actor tree is draining");
        let mut status = ready();
        status.intake.assigned = false;
        status.intake.partitions.clear();
        assert!(not_ready(&status)
            .unwrap()
            .contains("waiting for an assignment"));
        let mut status = ready();
        status.intake.partitions.insert(p(0), "opening");
        status.metrics.partitions.get_mut(&p(1)).unwrap().heard = false;
        status.intake.partitions.insert(p(1), "reading");
        assert_eq!(
            not_ready(&status).unwrap(),
            "partitions not ready: t-0 (opening), t-1 (no first fetch yet)"
        );
        let mut status = ready();
        status.restarting.push(p(1));
        assert_eq!(
            not_ready(&status).unwrap(),
            "partitions not ready: t-1 (restarting)"
        );
        // A member that was assigned nothing (more members than partitions) is ready.
        let mut status = ready();
        status.intake.partitions.clear();
        assert_eq!(not_ready(&status), None);
        // A client that assigns its own partitions stays in `init`: that means nothing.
        status.metrics.group_join_state = Some("init".into());
        assert_eq!(not_ready(&status), None);
        // A member whose statistics say the group is rebalancing is not ready until it is
        // steady again.
        status.intake.member = Some(actors::ports::GroupMember {
            generation: 3,
            member_id: "m".into(),
        });
        status.metrics.group_join_state = Some("wait-join".into());
        assert_eq!(
            not_ready(&status).unwrap(),
            "rebalancing (join state wait-join)"
        );
        status.metrics.group_join_state = Some("steady".into());
        assert_eq!(not_ready(&status), None);
    }

    #[test]
    fn lag_counts_owned_partitions_from_the_later_of_the_broker_and_the_last_fetch() {
        let mut status = ready();
        for (partition, position, fetched_lag) in [(p(0), 100, 5), (p(1), 40, 0)] {
            let m = status.metrics.partitions.get_mut(&partition).unwrap();
            m.position = Some(position);
            m.lag = Some(fetched_lag);
        }
        // Partition 1 is paused: its last fetch says 40, the broker says its log ends at 90.
        status.log_ends = [(p(0), 103), (p(1), 90)].into();
        // Partition 2 was revoked: it keeps its figures but has no lag here.
        status.metrics.partitions.insert(
            p(2),
            PartitionMetrics {
                position: Some(7),
                lag: Some(70),
                ..PartitionMetrics::default()
            },
        );
        let lags = owned_lags(&status);
        assert_eq!(lags, [(p(0), 5), (p(1), 50)].into());
        let report = status_of(Model::Group, "running", &status);
        assert_eq!(report.lag, 55);
        let behind = report.furthest_behind.unwrap();
        assert_eq!((behind.partition, behind.lag), (p(1), 50));
        assert_eq!(report.partitions[&p(1)].lag, Some(50));
        assert!(!report.partitions.contains_key(&p(2)));
    }

    #[test]
    fn wedged_when_a_reader_stops_polling_a_flush_hangs_or_a_partition_stays_stuck() {
        let limits = Liveness {
            poll_ttl: Duration::from_secs(60),
            flush_ttl: Duration::from_secs(300),
        };
        let mut status = ready();
        status.intake.since_poll_ms = [(p(0), 59_999), (p(1), 600_000)].into();
        // Partition 1 is paused: it is told not to poll.
        assert_eq!(not_live(&status, limits), None);
        status.intake.since_poll_ms.insert(p(0), 60_000);
        assert_eq!(
            not_live(&status, limits).unwrap(),
            "no poll for admin.poll_ttl_ms: t-0 (60000 ms)"
        );
        let mut status = ready();
        status.windows.flush_running_ms = Some(299_999);
        assert_eq!(not_live(&status, limits), None);
        status.windows.flush_running_ms = Some(300_000);
        status.stuck.push(p(1));
        assert_eq!(
            not_live(&status, limits).unwrap(),
            "a flush has run for 300000 ms (admin.flush_ttl_ms); restarted by the stall \
             watchdog twice in a row without moving: t-1"
        );
    }
}
