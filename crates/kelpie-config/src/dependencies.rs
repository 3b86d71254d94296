//! `depends_on` across the apps of one file: cycles are errors, and apps are returned with their
//! dependencies first so the daemon can start them in that order.
//!
//! Names that are not apps of the file are ignored here: they may name apps already running in
//! the daemon, which checks them.

/// The dependency graph of a file's apps, by position in the file.
pub(crate) struct Graph<'a> {
    names: &'a [Option<String>],
    /// For each app, the positions of the apps of this file it depends on, in the order written,
    /// without itself (depending on itself is reported with the app's fields).
    edges: Vec<Vec<usize>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    InProgress,
    Done,
}

impl<'a> Graph<'a> {
    /// `names[i]` is app `i`'s name (`None` when it has none), `depends_on[i]` the names it
    /// depends on.
    pub(crate) fn new(names: &'a [Option<String>], depends_on: &[Vec<String>]) -> Graph<'a> {
        let position = |name: &String| names.iter().position(|n| n.as_ref() == Some(name));
        let edges = depends_on
            .iter()
            .enumerate()
            .map(|(i, deps)| {
                let mut out: Vec<usize> = Vec::new();
                for j in deps.iter().filter_map(position) {
                    if j != i && !out.contains(&j) {
                        out.push(j);
                    }
                }
                out
            })
            .collect();
        Graph { names, edges }
    }

    fn name(&self, i: usize) -> &str {
        self.names[i].as_deref().unwrap_or("?")
    }

    /// Cycles reachable from the apps at `from`, each as names with the first repeated at the
    /// end (`api -> worker -> api`), each reported once.
    pub(crate) fn cycles(&self, from: &[usize]) -> Vec<String> {
        let mut marks = vec![Mark::New; self.edges.len()];
        let mut path = Vec::new();
        let mut found: Vec<Vec<usize>> = Vec::new();
        for &start in from {
            self.find_cycles(start, &mut marks, &mut path, &mut found);
        }
        found
            .iter()
            .map(|cycle| {
                cycle
                    .iter()
                    .map(|&i| self.name(i))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            })
            .collect()
    }

    fn find_cycles(
        &self,
        i: usize,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        if marks[i] != Mark::New {
            return;
        }
        marks[i] = Mark::InProgress;
        path.push(i);
        for &j in &self.edges[i] {
            match marks[j] {
                Mark::New => self.find_cycles(j, marks, path, found),
                Mark::InProgress => {
                    let from = path.iter().position(|&k| k == j).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(j);
                    let mut members = cycle[1..].to_vec();
                    members.sort_unstable();
                    let seen = found.iter().any(|c| {
                        let mut other = c[1..].to_vec();
                        other.sort_unstable();
                        other == members
                    });
                    if !seen {
                        found.push(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
    }

    /// The apps at `selected` in start order: each app's dependencies (through apps of the file,
    /// selected or not) right before it, otherwise file order. Meant for a graph without cycles;
    /// with one, every app still appears once.
    pub(crate) fn start_order(&self, selected: &[usize]) -> Vec<usize> {
        let mut marks = vec![Mark::New; self.edges.len()];
        let mut order = Vec::with_capacity(selected.len());
        for &i in selected {
            self.place(i, selected, &mut marks, &mut order);
        }
        order
    }

    fn place(&self, i: usize, selected: &[usize], marks: &mut [Mark], order: &mut Vec<usize>) {
        if marks[i] != Mark::New {
            return;
        }
        marks[i] = Mark::InProgress;
        for &j in &self.edges[i] {
            self.place(j, selected, marks, order);
        }
        marks[i] = Mark::Done;
        if selected.contains(&i) {
            order.push(i);
        }
    }
}

/// `apps` in start order (see [`Graph::start_order`]): each app's dependencies among them
/// right before it, otherwise in the order given. The daemon puts a start request in this
/// order, whatever client sent it.
pub fn in_start_order(apps: Vec<kelpie_core::AppSpec>) -> Vec<kelpie_core::AppSpec> {
    let names: Vec<Option<String>> = apps.iter().map(|a| Some(a.name.clone())).collect();
    let depends_on: Vec<Vec<String>> = apps.iter().map(|a| a.depends_on.clone()).collect();
    let all: Vec<usize> = (0..apps.len()).collect();
    let order = Graph::new(&names, &depends_on).start_order(&all);
    let mut slots: Vec<Option<kelpie_core::AppSpec>> = apps.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i)?.take())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph<'a>(names: &'a [Option<String>], deps: &[&[&str]]) -> Graph<'a> {
        let deps: Vec<Vec<String>> = deps
            .iter()
            .map(|d| d.iter().map(|s| s.to_string()).collect())
            .collect();
        Graph::new(names, &deps)
    }

    fn names(list: &[&str]) -> Vec<Option<String>> {
        list.iter().map(|n| Some(n.to_string())).collect()
    }

    #[test]
    fn dependencies_come_first_otherwise_file_order() {
        let n = names(&["web", "worker", "api", "db"]);
        let g = graph(&n, &[&["api"], &["db"], &["db", "cache"], &[]]);
        assert_eq!(g.cycles(&[0, 1, 2, 3]), Vec::<String>::new());
        // web needs api, which needs db; worker needs db, already placed.
        assert_eq!(g.start_order(&[0, 1, 2, 3]), [3, 2, 0, 1]);
        let unrelated = graph(&n, &[&[], &[], &[], &[]]);
        assert_eq!(unrelated.start_order(&[0, 1, 2, 3]), [0, 1, 2, 3]);
    }

    #[test]
    fn specs_are_put_in_start_order() {
        let spec = |name: &str, deps: &[&str]| kelpie_core::AppSpec {
            name: name.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            ..kelpie_core::AppSpec::default()
        };
        let apps = vec![
            spec("web", &["api"]),
            spec("worker", &["db"]),
            spec("api", &["db", "elsewhere"]),
            spec("db", &[]),
        ];
        let names: Vec<String> = in_start_order(apps).into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["db", "api", "web", "worker"]);
    }

    #[test]
    fn order_goes_through_apps_not_selected() {
        let n = names(&["api", "db", "cache"]);
        let g = graph(&n, &[&["db"], &["cache"], &[]]);
        assert_eq!(g.start_order(&[0, 2]), [2, 0]);
    }

    #[test]
    fn cycles_are_named_from_where_they_were_found() {
        let n = names(&["api", "worker", "db", "solo"]);
        let g = graph(&n, &[&["worker"], &["db"], &["api"], &["solo"]]);
        assert_eq!(g.cycles(&[0, 1, 2, 3]), ["api -> worker -> db -> api"]);
        assert_eq!(g.cycles(&[1]), ["worker -> db -> api -> worker"]);
        // Self-dependencies are left to the app's own field check.
        assert_eq!(g.cycles(&[3]), Vec::<String>::new());
        // Every app still appears once in the order.
        assert_eq!(g.start_order(&[0, 1, 2, 3]), [2, 1, 0, 3]);
    }

    #[test]
    fn each_cycle_is_reported_once_and_unreachable_ones_not_at_all() {
        let n = names(&["a", "b", "c", "d", "e"]);
        let g = graph(&n, &[&["b"], &["a"], &["a"], &["e"], &["d"]]);
        assert_eq!(g.cycles(&[0, 1, 2]), ["a -> b -> a"]);
        assert_eq!(g.cycles(&[0, 3]), ["a -> b -> a", "d -> e -> d"]);
    }

    #[test]
    fn unknown_names_and_nameless_apps_are_ignored() {
        let n = vec![Some("a".to_string()), None];
        let g = graph(&n, &[&["elsewhere"], &["a"]]);
        assert!(g.cycles(&[0, 1]).is_empty());
        assert_eq!(g.start_order(&[1, 0]), [0, 1]);
    }
}
