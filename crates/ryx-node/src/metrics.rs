//! Prometheus text exposition of a node's counters.

use crate::runtime::State;
use std::fmt::Write;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {v}");
}

/// Renders every metric of the node in Prometheus text format 0.0.4.
pub fn render(s: &State) -> String {
    let m = s.node.metrics();
    let now = s.clock.now();
    let status = s.node.status(now);
    let mut o = String::with_capacity(8 * 1024);
    family(&mut o, "ryx_messages_received_total", "counter", "Protocol messages received, by kind.");
    for (k, v) in m.messages_in.iter() {
        let _ = writeln!(o, "ryx_messages_received_total{{kind=\"{k}\"}} {v}");
    }
    family(&mut o, "ryx_messages_sent_total", "counter", "Protocol messages sent, by kind.");
    for (k, v) in m.messages_out.iter() {
        let _ = writeln!(o, "ryx_messages_sent_total{{kind=\"{k}\"}} {v}");
    }
    family(&mut o, "ryx_message_bytes_sent_total", "counter", "UDP payload bytes sent, by message kind.");
    for (k, v) in ryx_core::wire::Message::KINDS.iter().zip(&s.bytes_out_by_kind) {
        let _ = writeln!(o, "ryx_message_bytes_sent_total{{kind=\"{k}\"}} {v}");
    }
    family(&mut o, "ryx_datagrams_rejected_total", "counter", "Datagrams rejected, by reason.");
    for (k, v) in &m.rejected {
        let _ = writeln!(o, "ryx_datagrams_rejected_total{{reason=\"{k}\"}} {v}");
    }
    let (built, reused) = ryx_compute::search::index_cache_counts();
    single(&mut o, "ryx_search_indexes_built_total", "counter", "Search indexes built of chunks of documents.", built);
    single(
        &mut o,
        "ryx_search_indexes_reused_total",
        "counter",
        "Searches of a chunk served by its kept index.",
        reused,
    );
    let (hits, misses) = ryx_compute::pipeline::cache_counts();
    single(&mut o, "ryx_pipeline_chunks_reused_total", "counter", "Pipeline chunks answered from kept windows.", hits);
    single(
        &mut o,
        "ryx_pipeline_chunks_mapped_total",
        "counter",
        "Pipeline chunks of 64 KiB or more read anew.",
        misses,
    );
    let closed = crate::streams::WINDOWS_CLOSED.load(std::sync::atomic::Ordering::Relaxed);
    single(&mut o, "ryx_stream_windows_closed_total", "counter", "Stream windows this node closed as driver.", closed);
    let retries = crate::streams::RETRIES.load(std::sync::atomic::Ordering::Relaxed);
    single(&mut o, "ryx_stream_retries_total", "counter", "Stream window jobs tried again.", retries);
    single(&mut o, "ryx_bytes_received_total", "counter", "UDP payload bytes received.", s.io.bytes_in);
    single(&mut o, "ryx_bytes_sent_total", "counter", "UDP payload bytes sent.", s.io.bytes_out);
    single(&mut o, "ryx_datagrams_received_total", "counter", "UDP datagrams received.", s.io.datagrams_in);
    single(&mut o, "ryx_datagrams_sent_total", "counter", "UDP datagrams sent.", s.io.datagrams_out);
    single(&mut o, "ryx_send_errors_total", "counter", "Datagrams that could not be sent.", s.io.send_errors);
    single(&mut o, "ryx_fault_dropped_total", "counter", "Datagrams dropped by injected faults.", s.faults.dropped);
    single(&mut o, "ryx_fault_delayed_total", "counter", "Datagrams delayed by injected faults.", s.faults.delayed);
    single(&mut o, "ryx_neighbors", "gauge", "Active neighbours.", status.neighbors.len());
    single(&mut o, "ryx_passive_peers", "gauge", "Peers in the passive list.", status.passive_count);
    single(
        &mut o,
        "ryx_local_health",
        "gauge",
        "Lifeguard local-health multiplier (0 = healthy).",
        status.local_health,
    );
    single(&mut o, "ryx_failures_detected_total", "counter", "Neighbours declared dead.", m.failures_detected);
    single(
        &mut o,
        "ryx_suspicions_refuted_total",
        "counter",
        "Suspected neighbours that answered in time.",
        m.suspicions_refuted,
    );
    single(&mut o, "ryx_neighbors_left_total", "counter", "Neighbours that left gracefully.", m.neighbors_left);
    single(&mut o, "ryx_links_up_total", "counter", "Links formed.", m.links_up);
    single(
        &mut o,
        "ryx_coords_refused_total",
        "counter",
        "Round trips or peers' coordinates the network coordinates refused (not finite, negative, implausible).",
        m.coords_refused,
    );
    single(
        &mut o,
        "ryx_coords_outliers_total",
        "counter",
        "Coordinate samples that did not move the coordinate: they missed by far more than other peers' (a lying peer, or a route the plane cannot represent).",
        m.coords_outliers,
    );
    if let Some(c) = status.coord {
        single(&mut o, "ryx_coord_error", "gauge", "This node's estimate of its coordinate's relative error.", c.e);
    }
    single(&mut o, "ryx_links_down_total", "counter", "Links dropped.", m.links_down);
    single(
        &mut o,
        "ryx_neighbors_moved_total",
        "counter",
        "Neighbours that moved to another address by their own signed join.",
        m.neighbors_moved,
    );
    single(
        &mut o,
        "ryx_sync_answers_capped_total",
        "counter",
        "Anti-entropy answers cut short by the per-round budget.",
        m.sync_answers_capped,
    );
    single(&mut o, "ryx_items_delivered_total", "counter", "Items received for the first time.", m.items_delivered);
    single(&mut o, "ryx_items_duplicate_total", "counter", "Payload copies of items already held.", m.items_duplicate);
    single(
        &mut o,
        "ryx_items_exhausted_total",
        "counter",
        "Items that arrived without energy left.",
        m.items_exhausted,
    );
    single(&mut o, "ryx_items_evicted_total", "counter", "Items evicted by the store bound.", m.items_evicted);
    single(&mut o, "ryx_items_synced_total", "counter", "Items taken by anti-entropy.", m.items_synced);
    single(&mut o, "ryx_late_ticks_total", "counter", "Timer ticks that came late (node overloaded).", m.late_ticks);
    single(
        &mut o,
        "ryx_blob_wants_total",
        "counter",
        "Blobs asked for with blob_want (no known holder served them).",
        m.wants_sent,
    );
    single(
        &mut o,
        "ryx_blob_wants_dropped_total",
        "counter",
        "blob_want questions not passed on (route table full).",
        m.wants_dropped,
    );
    single(&mut o, "ryx_info_items", "gauge", "Info items held.", status.info_items);
    single(&mut o, "ryx_topology_nodes", "gauge", "Nodes in the learned topology.", status.topology_nodes);
    let h = &m.diffusion_latency;
    family(&mut o, "ryx_diffusion_latency_seconds", "histogram", "Time from an item's injection to its delivery here.");
    let mut cum = 0;
    for (i, b) in h.bounds_ms.iter().enumerate() {
        cum += h.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(o, "ryx_diffusion_latency_seconds_bucket{{le=\"{}\"}} {cum}", b / 1000.0);
    }
    let _ = writeln!(o, "ryx_diffusion_latency_seconds_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(o, "ryx_diffusion_latency_seconds_sum {}", h.sum_ms / 1000.0);
    let _ = writeln!(o, "ryx_diffusion_latency_seconds_count {}", h.count);
    let ryx_core::blobs::BlobUsage { blobs, used, capacity, pinned } = s.node.blob_usage();
    single(&mut o, "ryx_blobs", "gauge", "Blobs held in the in-memory store.", blobs);
    single(&mut o, "ryx_blob_bytes", "gauge", "Bytes held in the blob store.", used);
    single(&mut o, "ryx_blob_capacity_bytes", "gauge", "Bytes the blob store may hold (--memory-limit).", capacity);
    single(&mut o, "ryx_blobs_pinned", "gauge", "Blobs pinned by running jobs (not evictable).", pinned);
    let (queued, running) = s.node.job_engine().load();
    let (units, unit_us) = crate::work::kernel_stats();
    single(&mut o, "ryx_work_units_run_total", "counter", "Work units this node's kernels ran.", units);
    single(
        &mut o,
        "ryx_work_kernel_seconds_total",
        "counter",
        "Time this node's kernels ran, summed over its worker threads.",
        unit_us as f64 / 1e6,
    );
    single(&mut o, "ryx_work_queued", "gauge", "Work units queued here.", queued);
    single(&mut o, "ryx_work_running", "gauge", "Work units running on this node's workers.", running);
    single(
        &mut o,
        "ryx_worker_slots",
        "gauge",
        "Work units this node runs at once.",
        s.node.job_engine().config().worker_slots,
    );
    family(&mut o, "ryx_jobs", "gauge", "Jobs known to this node, by state.");
    let mut by_state = std::collections::BTreeMap::from([("running", 0), ("done", 0), ("failed", 0), ("cancelled", 0)]);
    for j in s.node.jobs() {
        let k = match j.state {
            ryx_core::jobs::JobState::Running => "running",
            ryx_core::jobs::JobState::Done => "done",
            ryx_core::jobs::JobState::Failed => "failed",
            ryx_core::jobs::JobState::Cancelled => "cancelled",
        };
        *by_state.entry(k).or_default() += 1;
    }
    for (k, v) in by_state {
        let _ = writeln!(o, "ryx_jobs{{state=\"{k}\"}} {v}");
    }
    single(&mut o, "ryx_jobs_homed", "gauge", "Jobs whose home is this node.", s.node.job_engine().home_jobs());
    single(
        &mut o,
        "ryx_job_home_step_downs_total",
        "counter",
        "Times this node stopped homing a job because another home of it (after a partition or a takeover) won.",
        s.node.job_engine().stepped_down(),
    );
    single(
        &mut o,
        "ryx_auth_keys",
        "gauge",
        "Cluster keys accepted for datagram authentication (0: authentication off).",
        s.node.auth_key_ids().len(),
    );
    single(
        &mut o,
        "ryx_http_unauthorized_total",
        "counter",
        "HTTP requests refused for a missing or wrong API token.",
        crate::access::UNAUTHORIZED.load(std::sync::atomic::Ordering::Relaxed),
    );
    single(
        &mut o,
        "ryx_http_read_only_refused_total",
        "counter",
        "Requests the read-only listener refused (not a read, or admin).",
        crate::access::READ_ONLY_REFUSED.load(std::sync::atomic::Ordering::Relaxed),
    );
    family(&mut o, "ryx_http_refused_total", "counter", "HTTP requests refused for exceeding a limit, by reason.");
    for r in crate::refusals::Refusal::ALL {
        let _ = writeln!(o, "ryx_http_refused_total{{reason=\"{}\"}} {}", r.label(), r.total());
    }
    let srv = &crate::server::STATS;
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    single(&mut o, "ryx_http_connections", "gauge", "HTTP connections open.", ld(&srv.open));
    single(&mut o, "ryx_http_connections_accepted_total", "counter", "HTTP connections accepted.", ld(&srv.accepted));
    single(
        &mut o,
        "ryx_http_connections_refused_total",
        "counter",
        "HTTP connections refused at the limit with every open one busy.",
        ld(&srv.refused),
    );
    single(
        &mut o,
        "ryx_http_connections_evicted_total",
        "counter",
        "Idle HTTP connections closed to make room for a new one.",
        ld(&srv.evicted),
    );
    single(
        &mut o,
        "ryx_http_connections_timed_out_total",
        "counter",
        "HTTP connections closed for a slow request head or for idling.",
        ld(&srv.timed_out),
    );
    single(&mut o, "ryx_uptime_seconds", "gauge", "Seconds since the node started.", status.uptime_ms as f64 / 1000.0);
    if let Some((rss, cpu)) = process_stats() {
        single(&mut o, "process_resident_memory_bytes", "gauge", "Resident memory.", rss);
        single(&mut o, "process_cpu_seconds_total", "counter", "CPU time used (user + system).", cpu);
    }
    o
}

/// Resident bytes and CPU seconds of this process, from /proc (Linux).
pub fn process_stats() -> Option<(u64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is index 0, utime 11, stime 12.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((pages * 4096, ticks as f64 / 100.0))
}
