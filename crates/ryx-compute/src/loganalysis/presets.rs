//! Settings for the ten Loghub datasets.
//!
//! Layouts are the ones of the Loghub README; masks, similarity threshold and depth
//! are the per-dataset settings of LogPAI's Drain benchmark
//! (`logparser/Drain/benchmark.py` in logpai/logparser).

/// Settings of one named dataset.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// Dataset name as accepted by `params.preset` (matched case-insensitively).
    pub name: &'static str,
    /// Header layout.
    pub format: &'static str,
    /// Variable masks, applied in order, each match replaced by `<*>`.
    pub masks: &'static [&'static str],
    /// Drain similarity threshold.
    pub similarity: f64,
    /// Drain tree depth.
    pub depth: usize,
}

/// The ten presets, in the order of the Loghub README.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "HDFS",
        format: "<Date> <Time> <Pid> <Level> <Component>: <Content>",
        masks: &[r"blk_-?\d+", r"(\d+\.){3}\d+(:\d+)?"],
        similarity: 0.5,
        depth: 4,
    },
    Preset {
        name: "Hadoop",
        format: "<Date> <Time> <Level> [<Process>] <Component>: <Content>",
        masks: &[r"(\d+\.){3}\d+"],
        similarity: 0.5,
        depth: 4,
    },
    Preset {
        name: "Spark",
        format: "<Date> <Time> <Level> <Component>: <Content>",
        masks: &[r"(\d+\.){3}\d+", r"\b[KGTM]?B\b", r"([\w-]+\.){2,}[\w-]+"],
        similarity: 0.5,
        depth: 4,
    },
    Preset {
        name: "Zookeeper",
        format: "<Date> <Time> - <Level>  [<Node>:<Component>@<Id>] - <Content>",
        masks: &[r"(/|)(\d+\.){3}\d+(:\d+)?"],
        similarity: 0.5,
        depth: 4,
    },
    Preset {
        name: "BGL",
        format: "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
        masks: &[r"core\.\d+"],
        similarity: 0.5,
        depth: 4,
    },
    Preset {
        name: "HPC",
        format: "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
        masks: &[r"=\d+"],
        similarity: 0.5,
        depth: 4,
    },
    Preset {
        name: "Linux",
        format: "<Month> <Date> <Time> <Level> <Component>([<PID>])?: <Content>",
        masks: &[r"(\d+\.){3}\d+", r"\d{2}:\d{2}:\d{2}"],
        similarity: 0.39,
        depth: 6,
    },
    Preset {
        name: "Apache",
        format: "[<Time>] [<Level>] <Content>",
        masks: &[r"(\d+\.){3}\d+"],
        similarity: 0.5,
        depth: 4,
    },
    Preset {
        name: "OpenSSH",
        format: "<Date> <Day> <Time> <Component> sshd[<Pid>]: <Content>",
        masks: &[r"(\d+\.){3}\d+", r"([\w-]+\.){2,}[\w-]+"],
        similarity: 0.6,
        depth: 5,
    },
    Preset {
        name: "Android",
        format: "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
        masks: &[r"(/[\w-]+)+", r"([\w-]+\.){2,}[\w-]+", r"\b(\-?\+?\d+)\b|\b0[Xx][a-fA-F\d]+\b|\b[a-fA-F\d]{4,}\b"],
        similarity: 0.2,
        depth: 6,
    },
];

/// Looks a preset up by name, ignoring ASCII case.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}
