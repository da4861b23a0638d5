//! The dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), against local clusters of real `ryx-node`
//! processes. Each test skips, saying why, when the browser is missing.
//!
//! Screenshots of every view land in a temporary directory, or in
//! `$RYX_SCREENSHOTS` (relative to the workspace root):
//! `RYX_SCREENSHOTS=docs/screenshots cargo test --release -p ryx-control --test browser screenshots`.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

const FORM: Duration = Duration::from_secs(30);

/// Ids listed as text beside the graph.
const LISTED: &str =
    "return [...document.querySelectorAll('#node-list li[data-node-id]')].map(li => li.dataset.nodeId).sort()";

fn listed(b: &Browser) -> Vec<String> {
    serde_json::from_value(b.js(LISTED)).unwrap_or_default()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Fails with the browser console attached, for diagnosis.
fn fail(b: &Browser, what: &str) -> ! {
    let console = b.console();
    panic!("{what}\nbrowser console:\n  {}", console.join("\n  "));
}

/// Console errors, except expected ones (a killed node's requests failing).
fn console_errors(b: &Browser) -> Vec<String> {
    b.console()
        .into_iter()
        .filter(|l| l.starts_with("SEVERE"))
        .filter(|l| !l.contains("Failed to load resource") && !l.contains("net::ERR_"))
        .collect()
}

fn wait_live(b: &Browser, nodes: usize) {
    let script = format!(
        "return window.__ryx && __ryx.stream.state === 'live' && document.querySelectorAll('#node-list li[data-node-id]').length === {nodes}"
    );
    if b.wait_js(FORM, &script).is_none() {
        fail(b, &format!("the page did not go live with {nodes} nodes listed: {:?}", listed(b)));
    }
}

#[test]
fn topology_shows_every_live_node_and_drops_a_killed_one() {
    let Some((chrome, driver)) = browser_or_skip("topology_shows_every_live_node_and_drops_a_killed_one") else {
        return;
    };
    let _serial = serial();
    let mut cluster = Cluster::start(6, "topo");
    let b = Browser::start(&chrome, &driver, 1280, 800);
    b.goto(&format!("http://{}/ui/", cluster.nodes[0].http));
    wait_live(&b, 6);
    let want = sorted(cluster.nodes.iter().map(|n| n.id.to_string()).collect());
    assert_eq!(listed(&b), want, "the list shows exactly the cluster's nodes");
    // The graph draws them too, with links between them.
    let drawn =
        b.js("return __ryx.layout.perf.nodes === 6 && [...__ryx.cluster.links.values()].filter(l => !l.fadeAt).length");
    assert!(drawn.as_u64().unwrap_or(0) >= 6, "graph has the nodes and their links: {drawn}");
    // Every node is described in words (accessible name) with its address.
    for n in &cluster.nodes {
        let label = b.js(&format!(
            "const li = document.querySelector('#node-list li[data-node-id=\"{}\"]'); return li && li.querySelector('button').getAttribute('aria-label')",
            n.id
        ));
        let label = label.as_str().unwrap_or_default().to_owned();
        assert!(
            label.contains(n.id.as_str()) && label.contains(&n.http.port().to_string()),
            "label of {}: {label:?}",
            n.id
        );
    }

    // Laid out by network coordinates: every node reports one (its probes'
    // round trips place it), and each sits at its coordinate's point.
    let placed =
        b.wait_js(FORM, "return [...__ryx.cluster.nodes.values()].filter(n => !n.goneAt && n.coord).length === 6");
    if placed.is_none() {
        fail(&b, "not every node reported a network coordinate");
    }
    b.js("const s = document.getElementById('topo-layout'); s.value = 'coords'; s.dispatchEvent(new Event('change')); return true");
    let at_points = b.wait_js(
        FORM,
        "const L = __ryx.layout; if (L.mode !== 'coords' || L.alpha > 0.9) return false; \
         return [...__ryx.cluster.nodes.values()].filter(n => !n.goneAt).every(n => n.coord && \
           Math.hypot(n.x - (n.coord.x - L.coordMid[0]) * L.coordScale, n.y - (n.coord.y - L.coordMid[1]) * L.coordScale) < 40)",
    );
    if at_points.is_none() {
        fail(&b, "the coordinate layout did not place the nodes at their coordinates");
    }
    b.js("const s = document.getElementById('topo-layout'); s.value = 'force'; s.dispatchEvent(new Event('change')); return true");

    // Kill a node that is not the one the page is connected to.
    let victim = cluster.nodes[3].id.clone();
    cluster.nodes[3].proc.kill();
    let t0 = Instant::now();
    let gone_from_list = b.wait_js(
        FORM,
        &format!("return !document.querySelector('#node-list li[data-node-id=\"{victim}\"]') && !__ryx.cluster.alive().some(n => n.id === '{victim}')"),
    );
    if gone_from_list.is_none() {
        fail(&b, &format!("killed node {victim} still listed after {FORM:?}"));
    }
    let listed_after = t0.elapsed();
    let gone_from_graph = b.wait_js(FORM, &format!("return !__ryx.cluster.nodes.has('{victim}')"));
    if gone_from_graph.is_none() {
        fail(&b, &format!("killed node {victim} still drawn after {FORM:?}"));
    }
    let faded_after = t0.elapsed();
    eprintln!(
        "node death -> gone from the list and marked dead on the graph: {:.2} s; faded out of the graph: {:.2} s",
        listed_after.as_secs_f64(),
        faded_after.as_secs_f64()
    );
    let live = sorted(cluster.live().iter().map(|n| n.id.to_string()).collect());
    assert_eq!(listed(&b), live, "the list shows exactly the live nodes");
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[test]
fn jobs_submitted_through_the_form_complete_and_show_their_results() {
    let Some((chrome, driver)) = browser_or_skip("jobs_submitted_through_the_form_complete_and_show_their_results")
    else {
        return;
    };
    let _serial = serial();
    // Nodes 2 and 3 hold dataset `app` in their own files: 5 words a line.
    let data = std::env::temp_dir().join(format!("ryx-control-dataset-{}", std::process::id()));
    let lines = [700usize, 1300];
    for (k, n) in lines.iter().enumerate() {
        let d = data.join(format!("node-{k}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut f = std::fs::File::create(d.join("app.log")).unwrap();
        for i in 0..*n {
            writeln!(f, "node{k} line {i} says hello").unwrap();
        }
    }
    // They also hold dataset `docs`: documents as JSON lines.
    for k in 0..2 {
        let mut f = std::fs::File::create(data.join(format!("node-{k}/docs.jsonl"))).unwrap();
        for i in 0..200 {
            let text = ["gossip node", "failure detector", "the gossip of failure", "disk"][(i * (k + 1)) % 4];
            writeln!(f, "{}", serde_json::json!({"id": format!("n{k}-{i:03}"), "text": text})).unwrap();
        }
    }
    let cluster = Cluster::start_with(4, "jobs", |i| match i {
        2 | 3 => vec![
            "--source".into(),
            format!("app={}/node-{}/*.log", data.display(), i - 2),
            "--source".into(),
            format!("docs={}/node-{}/*.jsonl", data.display(), i - 2),
        ],
        _ => Vec::new(),
    });
    let b = Browser::start(&chrome, &driver, 1280, 900);
    let node = cluster.nodes[1].http;
    b.goto(&format!("http://{node}/ui/#inject"));
    wait_live(&b, 4);

    // 1. Word count over the node's built-in corpus.
    b.click("#job-form input[name=kind][value='word-count']");
    b.click("#job-form input[name=source][value=corpus]");
    b.js("const s = document.querySelector('#job-form select[name=corpus_size]'); s.value = '1048576'; s.dispatchEvent(new Event('change', {bubbles: true})); return 1");
    b.click("#job-submit");
    let id = wait_result(&b, "word-count");
    let api = client(node).job(&id.as_str().into()).expect("job from the API");
    assert_eq!(api.state, ryx_api::JobState::Done);
    let top = api.result_as::<ryx_api::WordCountResult>().unwrap().expect("a word count").top;
    let (word, count) = top[0].clone();
    let shown = b.js("const li = document.querySelector('#job-result .hbars li'); return li && [li.querySelector('.w').textContent, li.querySelector('.c').textContent]");
    assert_eq!(shown[0], word.as_str(), "top word shown");
    assert_eq!(shown[1].as_str().unwrap().replace(',', ""), count.to_string(), "its count shown");
    let rows = b.js("return document.querySelectorAll('#job-result .hbars li').length").as_u64().unwrap();
    assert_eq!(rows as usize, top.len(), "every top word shown");
    // The jobs table lists it as done, with its units.
    let row = b.js(&format!(
        "const tr = document.querySelector('#jobs-table tr[data-job-id=\"{id}\"]'); return tr && [tr.dataset.state, tr.querySelector('small').textContent]"
    ));
    let units = api.progress.units_total;
    assert_eq!(row[0], "done");
    assert_eq!(row[1].as_str().unwrap(), format!("{units}/{units} units"));

    // 2. Grep over an uploaded file (a real browser file upload).
    let dir = std::env::temp_dir().join(format!("ryx-control-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("upload.log");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut want = 0;
    for i in 0..5000 {
        let bad = i % 37 == 0;
        want += usize::from(bad);
        writeln!(
            f,
            "2026-11-30 12:00:{:02} {} request {i} took {} ms",
            i % 60,
            if bad { "ERROR" } else { "INFO" },
            i % 250
        )
        .unwrap();
    }
    drop(f);
    b.js("location.hash = '#inject'; return 1");
    b.click("#job-form input[name=kind][value='grep']");
    b.click("#job-form input[name=source][value=file]");
    b.js("const p = document.querySelector('#job-form input[name=pattern]'); p.value = 'ERROR'; return 1");
    b.send_keys("#job-file", path.to_str().unwrap());
    b.click("#job-submit");
    let id = wait_result(&b, "grep");
    let api = client(node).job(&id.as_str().into()).expect("grep job from the API");
    let grep = api.result_as::<ryx_api::GrepResult>().unwrap().expect("a grep");
    assert_eq!(grep.matching_lines, want as u64, "grep counted the uploaded file");
    let text = b.js("return document.getElementById('job-result').textContent").as_str().unwrap().to_owned();
    assert!(text.contains(&format!("{want}matching lines")), "matching lines shown: {text:?}");
    assert!(text.contains("ERROR request 0 took 0 ms"), "a sample match shown: {text:?}");
    let _ = std::fs::remove_dir_all(&dir);

    // 3. The jobs view lists dataset `app` with each holder's bytes, and a
    // word count over it, submitted at a node holding none of it, counts
    // every holder's lines.
    b.js("location.hash = '#jobs'; return 1");
    let bytes: Vec<u64> =
        (0..2).map(|k| std::fs::metadata(data.join(format!("node-{k}/app.log"))).unwrap().len()).collect();
    let shown = b.wait_js(
        FORM,
        "const d = document.querySelector('#datasets [data-dataset=app]'); return d && d.querySelectorAll('li[data-node]').length === 2 && [...d.querySelectorAll('li[data-node]')].map(li => li.dataset.node)",
    );
    let Some(shown) = shown else { fail(&b, "dataset app not listed with its 2 holders in the jobs view") };
    let mut holders: Vec<String> = cluster.nodes[2..].iter().map(|n| n.id.to_string()).collect();
    holders.sort();
    assert_eq!(shown, serde_json::json!(holders), "each holder listed");
    let title = b.js("return document.querySelector('#datasets [data-dataset=app] h3').textContent");
    let total = bytes.iter().sum::<u64>();
    assert!(title.as_str().unwrap().contains("2 files on 2 nodes"), "{title}");
    assert_eq!(client(node).datasets().unwrap().datasets[0].bytes, total);
    b.js("location.hash = '#inject'; return 1");
    b.click("#job-form input[name=kind][value='word-count']");
    b.click("#job-form input[name=source][value=dataset]");
    if b.wait_js(FORM, "return document.querySelector('#job-dataset').value === 'app'").is_none() {
        fail(&b, "dataset app not offered by the form");
    }
    b.click("#job-submit");
    let id = wait_result(&b, "word-count");
    let api = client(node).job(&id.as_str().into()).expect("dataset job from the API");
    assert_eq!(api.dataset.as_ref().map(|d| (d.name.as_str(), d.nodes, d.bytes)), Some(("app", 2, total)));
    let wc = api.result_as::<ryx_api::WordCountResult>().unwrap().expect("a word count");
    assert_eq!(wc.total_words, 5 * lines.iter().sum::<usize>() as u64, "every holder's words counted");
    let text = b.js("return document.getElementById('job-detail').textContent").as_str().unwrap().to_owned();
    assert!(text.contains("dataset app"), "the detail names the dataset: {text:?}");

    // 4. A search over dataset `docs` from the search box shows the hits
    // the API gives, in order, and which nodes answered.
    b.js("location.hash = '#inject'; return 1");
    let offered = b.wait_js(
        FORM,
        "const s = document.querySelector('#search-dataset'); if (![...s.options].some(o => o.value === 'docs')) return false; s.value = 'docs'; return true",
    );
    if offered.is_none() {
        fail(&b, "dataset docs not offered by the search form");
    }
    b.js("document.querySelector('#search-q').value = 'gossip failure'; document.querySelector('#search-form input[name=k]').value = '7'; return 1");
    b.click("#search-submit");
    let shown = b.wait_js(
        Duration::from_secs(60),
        "const t = document.getElementById('search-hits'); const s = document.getElementById('search-status'); return !t.hidden && s.classList.contains('ok') && [...t.querySelectorAll('tbody tr')].map(tr => tr.children[1].textContent)",
    );
    let Some(shown) = shown else {
        let status = b.js("return document.getElementById('search-status').textContent");
        fail(&b, &format!("no search hits shown; status {status}"))
    };
    let api = client(node).search("docs", "gossip failure", 7, None).expect("search from the API");
    let ids: Vec<Value> = api["hits"].as_array().unwrap().iter().map(|h| h["id"].clone()).collect();
    assert_eq!(ids.len(), 7);
    assert_eq!(shown, Value::Array(ids), "the hits the API gives, in order");
    let status = b.js("return document.getElementById('search-status').textContent").as_str().unwrap().to_owned();
    assert!(status.contains("on 2 nodes") && status.contains("answered by"), "{status}");
    // Each hit names the node its document lives on and the nodes that
    // answered for it, as the API does.
    let lives: Value =
        b.js("return [...document.querySelectorAll('#search-hits tbody tr')].map(tr => tr.children[3].textContent)");
    let want: Vec<Value> = api["hit_nodes"]
        .as_array()
        .expect("hit_nodes")
        .iter()
        .map(|h| Value::from(h["lives_on"].as_str().expect("lives_on").chars().take(8).collect::<String>()))
        .collect();
    assert_eq!(lives, Value::Array(want), "where each hit lives");
    let by = b.js("return [...document.querySelectorAll('#search-hits tbody tr')].every(tr => tr.children[4].textContent.length >= 8)");
    assert_eq!(by, Value::Bool(true), "every hit shows who answered for it");
    let _ = std::fs::remove_dir_all(&data);
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// Waits until the job view shows a finished job of `kind` with its result;
/// returns the job id.
fn wait_result(b: &Browser, kind: &str) -> String {
    let script = format!(
        "const s = document.getElementById('job-detail-state'); const r = document.getElementById('job-result');
         return s && s.dataset.state === 'done' && r && r.dataset.kind === '{kind}' && location.hash.split('/')[1]"
    );
    match b.wait_js(Duration::from_secs(90), &script) {
        Some(Value::String(id)) => id,
        _ => {
            let status = b.js("return document.getElementById('job-form-status').textContent");
            fail(b, &format!("no finished {kind} job shown; form says {status}"))
        }
    }
}

#[test]
fn standalone_control_survives_the_death_of_its_node() {
    let Some((chrome, driver)) = browser_or_skip("standalone_control_survives_the_death_of_its_node") else {
        return;
    };
    let _serial = serial();
    let mut cluster = Cluster::start(4, "ctl");
    let first = cluster.nodes[0].http;
    let mut control = Control::start(first, 500);
    let b = Browser::start(&chrome, &driver, 1280, 800);
    b.goto(&format!("http://{}/ui/", control.addr));
    wait_live(&b, 4);
    let shows = |addr: std::net::SocketAddr| {
        let v = b.js("return document.getElementById('fact-node').textContent");
        v.as_str().unwrap_or_default().contains(&addr.to_string())
    };
    assert!(shows(first), "header names the node connected to");
    assert!(
        wait_for(Duration::from_secs(10), || control.status().filter(|s| s.known_nodes >= 4)).is_some(),
        "ryx-control learned the other nodes"
    );

    let dead_id = cluster.nodes[0].id.clone();
    cluster.nodes[0].proc.kill();
    let t0 = Instant::now();
    let switched = wait_for(FORM, || control.status().filter(|s| s.node != first));
    let Some(st) = switched else { fail(&b, "ryx-control did not switch nodes") };
    let now_on = st.node;
    let ok = b.wait_js(
        FORM,
        &format!(
            "return __ryx.stream.state === 'live' && __ryx.cluster.observer !== '{dead_id}'
               && !document.querySelector('#node-list li[data-node-id=\"{dead_id}\"]')
               && document.querySelectorAll('#node-list li[data-node-id]').length === 3
               && document.getElementById('fact-node').textContent.includes('{now_on}')"
        ),
    );
    if ok.is_none() {
        fail(&b, &format!("page did not recover through ryx-control (now on {now_on})"));
    }
    eprintln!(
        "standalone ryx-control: node killed -> page live again via {now_on}: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(control.proc.alive(), "ryx-control still runs");
    // The API keeps working through it.
    let status = client(control.addr).status().expect("status through ryx-control");
    assert_ne!(status.node_id, dead_id);
    assert_eq!(st.switches, 1);
}

#[test]
fn screenshots_of_every_view() {
    let Some((chrome, driver)) = browser_or_skip("screenshots_of_every_view") else {
        return;
    };
    let _serial = serial();
    let keep = std::env::var("RYX_SCREENSHOTS").is_ok();
    let cluster = Cluster::start(if keep { 12 } else { 5 }, "shots");
    let n = cluster.nodes.len();
    let node = cluster.nodes[0].http;
    let dir = screenshot_dir();
    let b = Browser::start(&chrome, &driver, 1440, 900);
    b.goto(&format!("http://{node}/ui/?theme=dark#topology"));
    wait_live(&b, n);
    // Metrics charts need some history to be worth a picture: that many
    // of the connected node's 1 s samples.
    let samples = if keep { 20 } else { 3 };
    wait_page(
        &b,
        Duration::from_secs(samples + 30),
        &format!("{samples} samples of the connected node"),
        &format!("return __ryx.metrics.mainHistory.length >= {samples}"),
    );
    shot(&b, &dir, "topology");

    // Two finished jobs: a word count, then a log analysis (shown).
    for (kind, size, pic) in [("word-count", "1048576", None), ("log-analysis", "8388608", Some("inject"))] {
        b.js("location.hash = '#inject'; return 1");
        b.click(&format!("#job-form input[name=kind][value='{kind}']"));
        b.click("#job-form input[name=source][value=corpus]");
        b.js(&format!(
            "const s = document.querySelector('#job-form select[name=corpus_size]'); s.value = '{size}'; s.dispatchEvent(new Event('change', {{bubbles: true}})); return 1"
        ));
        if let Some(pic) = pic {
            shot(&b, &dir, pic);
        }
        b.click("#job-submit");
        wait_result(&b, kind);
    }
    // The jobs table lists both, finished.
    wait_page(
        &b,
        FORM,
        "both jobs done in the jobs table",
        "return document.querySelectorAll('#jobs-table tr[data-job-id][data-state=\"done\"]').length >= 2",
    );
    shot(&b, &dir, "jobs");

    // A weak item, so its energy visibly decays hop by hop.
    b.js("location.hash = '#energy'; const e = document.querySelector('#energy-form input[name=energy]'); e.value = '6'; return 1");
    b.click("#energy-form button[type=submit]");
    b.wait_js(FORM, "return document.querySelector('#energy-hops tbody tr') !== null").expect("energy trace");
    // The graph's energy pulses (one per holder, 350 ms apart per hop,
    // 900 ms each) have run out.
    wait_page(
        &b,
        FORM,
        "the energy pulses played out",
        "const t = __ryx.app.energy.trace;
         if (!t || !t.rounds || !t.pulseStart) return false;
         const hops = Math.max(0, ...[...t.byNode.values()].map((e) => e.hops || 0));
         return Date.now() - t.pulseStart > 900 + 350 * hops",
    );
    shot(&b, &dir, "energy");

    b.js("location.hash = '#metrics'; return 1");
    // Every chart drawn, each with a line (two points at least).
    wait_page(
        &b,
        FORM,
        "every metrics chart drawn",
        "const m = __ryx.metrics;
         return __ryx.app.view === 'metrics'
           && [...Object.values(m.charts), ...Object.values(m.cluster)].every((c) => !c.dirty && c.points.length >= 2)",
    );
    shot(&b, &dir, "metrics");

    b.js("location.hash = '#topology'; return 1");
    b.click("#node-list li:nth-child(2) button");
    b.wait_js(FORM, "return document.querySelector('#detail-body table') !== null").expect("node detail");
    // Its neighbours and its blobs loaded.
    wait_page(
        &b,
        FORM,
        "the node's neighbours and blobs in its panel",
        "const d = document.getElementById('detail-body');
         return !!d && !!d.querySelector('#detail-neighbours')
           && [...d.querySelectorAll('button')].some((x) => x.textContent === 'Refresh blobs')",
    );
    shot(&b, &dir, "node-detail");
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    eprintln!("screenshots in {}", dir.display());
}

/// Waits until `script` returns something truthy; fails with the browser
/// console, saying `what` it waited for, after `timeout`.
fn wait_page(b: &Browser, timeout: Duration, what: &str, script: &str) {
    if b.wait_js(timeout, script).is_none() {
        fail(b, &format!("waited {timeout:?} for {what}"));
    }
}

fn shot(b: &Browser, dir: &std::path::Path, name: &str) {
    let path = dir.join(format!("{name}.png"));
    b.screenshot(&path);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{name}.png is a real picture");
}

/// The incidents view shows the network's own verdict: two nodes of one
/// rack killed become one incident, read from the connected node, with
/// the network's aggregates beside it.
/// `RYX_SCREENSHOTS=docs/screenshots cargo test --release -p ryx-control --test browser incidents` keeps its picture.
#[test]
fn incidents_view_shows_the_networks_verdict() {
    let Some((chrome, driver)) = browser_or_skip("incidents_view_shows_the_networks_verdict") else {
        return;
    };
    let _serial = serial();
    let mut cluster = Cluster::start_with(8, "incidents", |i| vec!["--label".into(), format!("rack=r{}", i % 2)]);
    let n = cluster.nodes.len();
    // The least id leads the tree (and notifies); the other rack dies.
    let leader = (0..n).min_by_key(|&i| cluster.nodes[i].id.to_string()).expect("nodes");
    let rack = (leader + 1) % 2;
    let watch = (0..n).find(|&i| i % 2 != rack).expect("a survivor");
    let node = cluster.nodes[watch].http;
    let b = Browser::start(&chrome, &driver, 1440, 1400);
    b.goto(&format!("http://{node}/ui/?theme=dark#metrics"));
    wait_live(&b, n);
    wait_page(
        &b,
        FORM,
        "the network's aggregates, counting every node",
        "return document.querySelectorAll('#aggregates-table tr[data-metric]').length >= 5
           && /\\d/.test(document.getElementById('aggregates-note').textContent)",
    );
    let victims: Vec<usize> = (0..n).filter(|i| i % 2 == rack).take(2).collect();
    for &v in &victims {
        cluster.nodes[v].proc.kill();
    }
    wait_page(
        &b,
        FORM,
        "one firing incident of the rack",
        &format!(
            "const r = [...document.querySelectorAll('#incidents-table tr[data-state=firing]')];
             return r.length === 1 && r[0].textContent.includes('rack=r{rack}: 2 nodes down')"
        ),
    );
    if std::env::var("RYX_SCREENSHOTS").is_ok() {
        // The aggregates have had a few rounds to settle after the deaths.
        std::thread::sleep(Duration::from_secs(12));
        b.js("document.getElementById('h-incidents').scrollIntoView(); return 1");
        shot(&b, &screenshot_dir(), "incidents");
    }
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// The metrics view shows a running stream's closed windows (table and
/// chart) and a learning task's accuracy over time, read from the node.
/// `RYX_SCREENSHOTS=docs/screenshots cargo test --release -p ryx-control --test browser streams` keeps its picture.
#[test]
fn streams_and_learning_show_their_windows_and_accuracy() {
    let Some((chrome, driver)) = browser_or_skip("streams_and_learning_show_their_windows_and_accuracy") else {
        return;
    };
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("ryx-control-streams-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let log = |i: usize| dir.join(format!("app{i}.log"));
    let cluster = Cluster::start_with(3, "streams", |i| vec!["--source".into(), format!("app={}", log(i).display())]);
    let node = cluster.nodes[0].http;
    // Lines stamped with the time they are written (epoch ms, one of the
    // built-in shapes), ten a second per node.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..cluster.nodes.len())
        .map(|i| {
            let (path, stop) = (log(i), stop.clone());
            std::thread::spawn(move || {
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
                let mut k = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ms =
                        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
                    let level = if k.is_multiple_of(5) { "ERROR" } else { "INFO" };
                    writeln!(f, "{ms} {level} worker {i} handled request {k} in {} ms", k % 17).unwrap();
                    k += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        })
        .collect();
    let post = |path: &str, body: String| {
        wait_for(FORM, || {
            let (st, b) = http(node, "POST", path, Some(body.as_bytes()), Duration::from_secs(5)).ok()?;
            (st == 201).then(|| String::from_utf8_lossy(&b).into_owned())
        })
        .unwrap_or_else(|| panic!("POST {path} {body} was not accepted"))
    };
    // Once every holder is announced, a stream of 2 s windows.
    wait_for(FORM, || {
        let d: Value = get(node, "/v1/datasets")?;
        (d["datasets"][0]["holders"].as_array()?.len() == 3).then_some(())
    })
    .expect("every holder announced");
    post(
        "/v1/streams",
        r#"{"dataset":"app","stages":[{"level":true},{"template":true}],"window_ms":2000,"lateness_ms":1000}"#.into(),
    );
    // A learning task: two classes, x > 0 or not, rows at every node.
    for (i, n) in cluster.nodes.iter().enumerate() {
        let rows: String = (0..60)
            .map(|k| {
                let x = ((k * 7 + i * 13) % 41) as f64 / 20.0 - 1.0;
                format!("{x},{},{}\n", 1.0 - x, u8::from(x > 0.0))
            })
            .collect();
        let (st, b) = http(n.http, "POST", "/v1/rows/toy", Some(rows.as_bytes()), Duration::from_secs(5)).unwrap();
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&b));
    }
    post("/v1/learn", r#"{"id":"toy","dataset":"toy","features":2,"classes":2,"cycles":60,"period_ms":500}"#.into());

    let b = Browser::start(&chrome, &driver, 1440, 1600);
    b.goto(&format!("http://{node}/ui/?theme=dark#metrics"));
    wait_live(&b, cluster.nodes.len());
    wait_page(
        &b,
        Duration::from_secs(60),
        "three closed windows of the stream, with lines and top keys",
        "const r = [...document.querySelectorAll('#streams-table tr[data-window]')];
         return r.length >= 3 && r.some(x => /ERROR/.test(x.textContent) && /INFO/.test(x.textContent))
           && Number(r[0].children[2].textContent.replace(/\\D/g, '')) > 0",
    );
    wait_page(
        &b,
        Duration::from_secs(60),
        "the learning task's accuracy in its table and chart",
        "const r = document.querySelector('#learning-table tr[data-task=toy]');
         const v = document.querySelectorAll('#chart-learning .val');
         return r && /%/.test(r.children[5].textContent) && v.length === 2 && /%/.test(v[1].textContent)",
    );
    let lines = b.js("return document.querySelector('#chart-stream .val').textContent");
    assert!(
        lines.as_str().is_some_and(|t| t.chars().any(|c| c.is_ascii_digit())),
        "the stream chart has a value: {lines}"
    );
    if std::env::var("RYX_SCREENSHOTS").is_ok() {
        std::thread::sleep(Duration::from_secs(10));
        b.js("document.getElementById('h-streams').scrollIntoView(); return 1");
        shot(&b, &screenshot_dir(), "streams");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
