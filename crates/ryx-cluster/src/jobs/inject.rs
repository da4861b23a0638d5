//! `inject`: run a job on the cluster and show its result.

use crate::chaos::faults;
use crate::cli::InjectArgs;
use crate::cluster::lifecycle::secs;
use crate::cluster::state::RunDir;
use crate::cluster::Cluster;
use crate::jobs::run::{self, Source};
use crate::jobs::{self, render, Follower, Progress};
use crate::util::human;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status when the result differs from the reference (`--verify`).
pub const EXIT_MISMATCH: u8 = 3;

/// `ryx-cluster inject`.
pub fn inject(dir_arg: Option<&Path>, args: InjectArgs) -> Result<ExitCode> {
    let dir = RunDir::resolve(dir_arg)?;
    let mut cluster = Cluster::new(dir.clone(), dir.load_required()?);
    faults::heal_due(&mut cluster, "deadline", true)?;
    let src = Source::from_args(&args.inputs, &args.size, args.seed)?;
    let (param_list, params) = run::params(&args.kind, &src, args.kernel.preset.as_deref(), &args.kernel.params)?;
    if let Err(e) = ryx_compute::JobSpec::new(&args.kind, &params) {
        bail!("{e}");
    }
    let entry = run::entry_node(&mut cluster, args.to)?;
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let (job_id, bytes, loaded) = match &args.dataset {
        Some(name) => {
            let mut job = ryx_api::SubmitJob::over_dataset(&args.kind, name);
            job.params = params;
            job.redundancy = args.kernel.redundancy;
            let s = cluster
                .client(entry)
                .submit(&job)
                .with_context(|| format!("submitting over dataset {name} at node {entry}"))?;
            let d = s.dataset.clone().unwrap_or_else(|| ryx_api::DatasetSnapshot {
                name: name.clone(),
                snapshot: String::new(),
                nodes: 0,
                bytes: 0,
            });
            say(format!(
                "Job {} ({}) submitted at node {entry} over dataset {name}: {} on {} nodes (snapshot {}){}",
                s.job_id,
                args.kind,
                jobs::mib(d.bytes),
                d.nodes,
                &d.snapshot[..d.snapshot.len().min(16)],
                if s.unreachable.is_empty() {
                    String::new()
                } else {
                    format!("; {} holders unreachable, left out", s.unreachable.len())
                }
            ));
            (s.job_id, d.bytes, None)
        }
        None => {
            say(format!("Loading {} onto node {entry} ({})", src.describe(), cluster.state.nodes[entry].api()));
            let t_load = std::time::Instant::now();
            let loaded = run::load(&cluster, entry, &src, args.energy, None)?;
            let job_id = run::submit(&cluster, entry, &args.kind, &loaded, params, args.kernel.redundancy)?;
            say(format!(
                "Loaded {} in {} ({} units); job {job_id} ({}{}) submitted",
                jobs::mib(loaded.bytes),
                human(t_load.elapsed()),
                loaded.units(),
                args.kind,
                args.kernel.redundancy.map(|r| format!(", redundancy {r}")).unwrap_or_default()
            ));
            (job_id, loaded.bytes, Some(loaded))
        }
    };
    let mut bar = Progress::new(&args.kind, bytes);
    if args.json {
        bar = bar.quiet();
    }
    let mut follower = Follower::new(job_id.clone(), entry);
    let job = follower.wait(&mut cluster, secs(args.timeout), Duration::from_millis(100), |_, j| {
        bar.update(j);
        Ok(())
    });
    bar.finish();
    let job = job?;
    let elapsed = bar.elapsed();
    if args.json {
        out!("{}", serde_json::to_string_pretty(&job)?);
    }
    jobs::check_done(&job)?;
    let digest = job.result_digest.clone().unwrap_or_default();
    if !args.json {
        let st = &job.stats;
        out!(
            "{} {} in {} ({:.1} MB/s; {} results from {} workers, {} units re-issued, {} takeovers)",
            args.kind,
            job.state,
            human(elapsed),
            bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-3),
            st.results,
            st.workers,
            st.reissued,
            st.takeovers
        );
        out!();
        out!("{}", render::job(&job).trim_end());
        out!();
        out!("result_digest: {digest}");
    }
    if let (true, Some(loaded)) = (args.verify, &loaded) {
        let (files, _tmp) = run::reference_files(&src, Some(loaded), &std::env::temp_dir())?;
        let r = run::reference(&cluster, &args.kind, &files, &param_list, None)?;
        let same = r.digest == digest;
        let msg = format!(
            "reference:     {} (ryx-node exec in {}) — {}",
            r.digest,
            human(r.wall),
            if same { "identical" } else { "DIFFERENT" }
        );
        if args.json {
            eprintln!("{msg}");
        } else {
            out!("{msg}");
        }
        if !same {
            eprintln!("ryx-cluster: the cluster's result differs from the single-process reference");
            return Ok(ExitCode::from(EXIT_MISMATCH));
        }
    }
    Ok(ExitCode::SUCCESS)
}
