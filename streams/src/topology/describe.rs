//! `Topology::describe`: the nodes, their edges and sub-topologies, as
//! Kafka Streams prints them, and as a Mermaid graph.

use std::fmt;

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Source {
        topics: Vec<String>,
    },
    /// A processor, with the stores it reads and writes.
    Processor {
        stores: Vec<String>,
    },
    Sink {
        topic: String,
    },
}

impl NodeKind {
    /// A processor without stores.
    pub(crate) fn processor() -> NodeKind {
        NodeKind::Processor { stores: Vec::new() }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct NodeDescription {
    pub name: String,
    pub kind: NodeKind,
    pub predecessors: Vec<usize>,
}

/// The nodes of a topology, named as Kafka Streams names them
/// (`KSTREAM-FILTER-0000000001`), grouped into sub-topologies: the parts
/// connected by edges; a repartition topic's sink and source are not
/// connected, so it separates them.
#[derive(Clone, Debug, Default)]
pub struct Description {
    pub(crate) nodes: Vec<NodeDescription>,
    /// Global tables: (store, topic).
    pub(crate) globals: Vec<(String, String)>,
}

impl Description {
    /// Sub-topologies, each its nodes' indexes in creation order.
    pub(crate) fn sub_topologies(&self) -> Vec<Vec<usize>> {
        let mut group: Vec<usize> = (0..self.nodes.len()).collect();
        fn root(group: &mut [usize], mut i: usize) -> usize {
            while group[i] != i {
                group[i] = group[group[i]];
                i = group[i];
            }
            i
        }
        let union = |group: &mut [usize], i: usize, p: usize| {
            let (a, b) = (root(group, i), root(group, p));
            group[a.max(b)] = a.min(b);
        };
        // Nodes that share a (task) store are in one task, as a join and
        // the table it reads: Kafka Streams groups them the same way.
        let mut first_user: Vec<(&str, usize)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for &p in &node.predecessors {
                union(&mut group, i, p);
            }
            let NodeKind::Processor { stores } = &node.kind else {
                continue;
            };
            for store in stores.iter().filter(|s| !self.is_global(s)) {
                match first_user.iter().find(|(name, _)| name == store) {
                    Some(&(_, first)) => union(&mut group, i, first),
                    None => first_user.push((store, i)),
                }
            }
        }
        let mut parts: Vec<Vec<usize>> = Vec::new();
        let mut roots: Vec<usize> = Vec::new();
        for i in 0..self.nodes.len() {
            let r = root(&mut group, i);
            match roots.iter().position(|&x| x == r) {
                Some(at) => parts[at].push(i),
                None => {
                    roots.push(r);
                    parts.push(vec![i]);
                }
            }
        }
        parts
    }

    fn is_global(&self, store: &str) -> bool {
        self.globals.iter().any(|(name, _)| name == store)
    }

    fn successors(&self, index: usize) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| n.predecessors.contains(&index))
            .map(|n| n.name.as_str())
            .collect()
    }

    /// The topology as a Mermaid flowchart (`flowchart LR`).
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (i, part) in self.sub_topologies().iter().enumerate() {
            out.push_str(&format!("  subgraph sub{i}[\"Sub-topology {i}\"]\n"));
            for &n in part {
                let node = &self.nodes[n];
                let label = match &node.kind {
                    NodeKind::Source { topics } => {
                        format!("{}<br/>{}", node.name, topics.join(", "))
                    }
                    NodeKind::Sink { topic } => format!("{}<br/>{topic}", node.name),
                    NodeKind::Processor { .. } => node.name.clone(),
                };
                out.push_str(&format!("    n{n}[\"{label}\"]\n"));
            }
            out.push_str("  end\n");
        }
        for (i, node) in self.nodes.iter().enumerate() {
            for p in &node.predecessors {
                out.push_str(&format!("  n{p} --> n{i}\n"));
            }
        }
        out
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        for (i, part) in self.sub_topologies().iter().enumerate() {
            writeln!(f, "   Sub-topology: {i}")?;
            for &n in part {
                let node = &self.nodes[n];
                match &node.kind {
                    NodeKind::Source { topics } => writeln!(
                        f,
                        "    Source: {} (topics: [{}])",
                        node.name,
                        topics.join(", ")
                    )?,
                    NodeKind::Processor { stores } => writeln!(
                        f,
                        "    Processor: {} (stores: [{}])",
                        node.name,
                        stores.join(", ")
                    )?,
                    NodeKind::Sink { topic } => {
                        writeln!(f, "    Sink: {} (topic: {topic})", node.name)?
                    }
                }
                let successors = self.successors(n);
                if !successors.is_empty() {
                    writeln!(f, "      --> {}", successors.join(", "))?;
                }
                let predecessors: Vec<&str> = node
                    .predecessors
                    .iter()
                    .map(|&p| self.nodes[p].name.as_str())
                    .collect();
                if !predecessors.is_empty() {
                    writeln!(f, "      <-- {}", predecessors.join(", "))?;
                }
            }
        }
        for (store, topic) in &self.globals {
            writeln!(
                f,
                "   Global store: {store} (topic: {topic}; kept whole by every instance, no tasks)"
            )?;
        }
        Ok(())
    }
}
