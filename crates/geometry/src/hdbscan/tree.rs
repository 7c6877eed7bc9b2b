//! From the minimum spanning tree to clusters, as the library's `_hdbscan_linkage.pyx` and
//! `_hdbscan_tree.pyx` do it: single linkage, condensed tree, stability, selection, labelling,
//! probabilities and GLOSH outlier scores.

use std::collections::{BTreeMap, BTreeSet};

use super::{ClusterSelection, HdbscanConfig, HdbscanResult};

/// One merge of the single-linkage dendrogram: the two merged nodes, the distance, the size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkageRow {
    /// First merged node (a point < n, or a merge n + row).
    pub left: usize,
    /// Second merged node.
    pub right: usize,
    /// Merge distance.
    pub distance: f64,
    /// Points under the new node.
    pub size: usize,
}

/// One row of the condensed tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CondensedRow {
    /// The parent cluster (ids from n; n is the root).
    pub parent: usize,
    /// A point (< n) or a child cluster.
    pub child: usize,
    /// 1 / distance at which the child left the parent.
    pub lambda: f64,
    /// Points under the child.
    pub child_size: usize,
}

/// Sorts MST edges by weight (stable) and merges them with a union-find whose new nodes are
/// numbered n, n + 1, … in merge order.
pub fn single_linkage(mut edges: Vec<(usize, usize, f64)>, n: usize) -> Vec<LinkageRow> {
    edges.sort_by(|a, b| a.2.total_cmp(&b.2));
    let mut parent: Vec<usize> = (0..2 * n).collect();
    let mut size = vec![1usize; 2 * n];
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        let mut root = x;
        while parent[root] != root {
            root = parent[root];
        }
        while parent[x] != root {
            let next = parent[x];
            parent[x] = root;
            x = next;
        }
        root
    }
    let mut next = n;
    edges
        .into_iter()
        .map(|(a, b, d)| {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            let s = size[ra] + size[rb];
            size[next] = s;
            parent[ra] = next;
            parent[rb] = next;
            next += 1;
            LinkageRow {
                left: ra,
                right: rb,
                distance: d,
                size: s,
            }
        })
        .collect()
}

/// Points under `node` (a point < n, or merge n + row).
fn node_size(linkage: &[LinkageRow], n: usize, node: usize) -> usize {
    if node >= n { linkage[node - n].size } else { 1 }
}

/// λ = 1 / distance (∞ at distance 0).
fn lambda_of(distance: f64) -> f64 {
    if distance > 0.0 {
        1.0 / distance
    } else {
        f64::INFINITY
    }
}

/// The library's `bfs_from_hierarchy`: every node under `root`, breadth first.
fn bfs(linkage: &[LinkageRow], root: usize, n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut level = vec![root];
    while !level.is_empty() {
        out.extend_from_slice(&level);
        level = level
            .iter()
            .filter(|&&x| x >= n)
            .flat_map(|&x| {
                let r = linkage[x - n];
                [r.left, r.right]
            })
            .collect();
    }
    out
}

/// The library's `condense_tree`: merges at equal distances taken one at a time, in `linkage`'s
/// order (see [`condense_simultaneous`] for the order-free hierarchy).
pub fn condense(linkage: &[LinkageRow], n: usize, min_cluster_size: usize) -> Vec<CondensedRow> {
    let root = 2 * linkage.len();
    let mut relabel = vec![0usize; root + 1];
    relabel[root] = n;
    let mut next_label = n + 1;
    let mut ignore = vec![false; root + 1];
    let mut out = Vec::new();
    let count = |node: usize| node_size(linkage, n, node);
    for node in bfs(linkage, root, n) {
        if ignore[node] || node < n {
            continue;
        }
        let row = linkage[node - n];
        let (left, right) = (row.left, row.right);
        let lambda = lambda_of(row.distance);
        let (lc, rc) = (count(left), count(right));
        let parent = relabel[node];
        let fall_out = |sub_root: usize, out: &mut Vec<CondensedRow>, ignore: &mut Vec<bool>| {
            for sub in bfs(linkage, sub_root, n) {
                if sub < n {
                    out.push(CondensedRow {
                        parent,
                        child: sub,
                        lambda,
                        child_size: 1,
                    });
                }
                ignore[sub] = true;
            }
        };
        if lc >= min_cluster_size && rc >= min_cluster_size {
            relabel[left] = next_label;
            next_label += 1;
            out.push(CondensedRow {
                parent,
                child: relabel[left],
                lambda,
                child_size: lc,
            });
            relabel[right] = next_label;
            next_label += 1;
            out.push(CondensedRow {
                parent,
                child: relabel[right],
                lambda,
                child_size: rc,
            });
        } else if lc < min_cluster_size && rc < min_cluster_size {
            fall_out(left, &mut out, &mut ignore);
            fall_out(right, &mut out, &mut ignore);
        } else if lc < min_cluster_size {
            relabel[right] = parent;
            fall_out(left, &mut out, &mut ignore);
        } else {
            relabel[left] = parent;
            fall_out(right, &mut out, &mut ignore);
        }
    }
    out
}

/// The condensed tree with all merges at one distance taken at once (HDBSCAN*'s hierarchy,
/// Campello, Moulavi, Zimek and Sander 2015: the clusters at a level are the connected
/// components left when every edge above it is removed). A merge node whose child merges at the
/// same distance absorbs that child's children, so a cluster leaves its parent with all its
/// siblings of that level: the children of at least `min_cluster_size` points become clusters
/// (one alone continues its parent), the points of the smaller ones fall out. Unlike
/// [`condense`], the result does not depend on the order of equal weights or on which of several
/// minimum spanning trees `linkage` was built from; clusters are numbered breadth first.
pub fn condense_simultaneous(
    linkage: &[LinkageRow],
    n: usize,
    min_cluster_size: usize,
) -> Vec<CondensedRow> {
    let count = |node: usize| node_size(linkage, n, node);
    // The children of `node` once merges at its own distance are flattened into it.
    let flat_children = |node: usize| -> Vec<usize> {
        let d = linkage[node - n].distance;
        let mut out = Vec::new();
        let mut stack = vec![linkage[node - n].right, linkage[node - n].left];
        while let Some(x) = stack.pop() {
            if x >= n && linkage[x - n].distance == d {
                stack.push(linkage[x - n].right);
                stack.push(linkage[x - n].left);
            } else {
                out.push(x);
            }
        }
        out
    };
    let mut out = Vec::new();
    if linkage.is_empty() {
        return out;
    }
    let mut next_label = n + 1;
    let mut queue = std::collections::VecDeque::from([(n + linkage.len() - 1, n)]);
    while let Some((node, label)) = queue.pop_front() {
        let lambda = lambda_of(linkage[node - n].distance);
        let children = flat_children(node);
        let big: Vec<usize> = children
            .iter()
            .copied()
            .filter(|&c| count(c) >= min_cluster_size)
            .collect();
        for &c in children.iter().filter(|&&c| count(c) < min_cluster_size) {
            for p in bfs(linkage, c, n).into_iter().filter(|&p| p < n) {
                out.push(CondensedRow {
                    parent: label,
                    child: p,
                    lambda,
                    child_size: 1,
                });
            }
        }
        match big.as_slice() {
            [] => {}
            [only] => queue.push_back((*only, label)),
            _ => {
                for &c in &big {
                    out.push(CondensedRow {
                        parent: label,
                        child: next_label,
                        lambda,
                        child_size: count(c),
                    });
                    if c >= n {
                        queue.push_back((c, next_label));
                    }
                    next_label += 1;
                }
            }
        }
    }
    out
}

/// The library's `compute_stability`: Σ (λ_child − λ_birth(parent)) · child_size per cluster.
fn stability(tree: &[CondensedRow], n: usize) -> BTreeMap<usize, f64> {
    let mut births: BTreeMap<usize, f64> = BTreeMap::new();
    for r in tree {
        births.insert(r.child, r.lambda);
    }
    births.insert(n, 0.0);
    let mut st: BTreeMap<usize, f64> = BTreeMap::new();
    for r in tree {
        let b = births.get(&r.parent).copied().unwrap_or(0.0);
        *st.entry(r.parent).or_insert(0.0) += (r.lambda - b) * r.child_size as f64;
    }
    // Clusters that are parents of nothing (leaves with only cluster-size rows) still count.
    for r in tree.iter().filter(|r| r.child_size > 1) {
        st.entry(r.child).or_insert(0.0);
    }
    st
}

fn cluster_children(tree: &[CondensedRow]) -> BTreeMap<usize, Vec<usize>> {
    let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for r in tree.iter().filter(|r| r.child_size > 1) {
        m.entry(r.parent).or_default().push(r.child);
    }
    m
}

fn descendants(children: &BTreeMap<usize, Vec<usize>>, node: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    while let Some(x) = stack.pop() {
        if let Some(c) = children.get(&x) {
            for &y in c {
                out.push(y);
                stack.push(y);
            }
        }
    }
    out
}

/// `traverse_upwards` / `epsilon_search`: replace selected clusters born below ε by their
/// ancestor at ε.
fn epsilon_search(
    leaves: &BTreeSet<usize>,
    tree: &[CondensedRow],
    children: &BTreeMap<usize, Vec<usize>>,
    epsilon: f64,
    allow_single: bool,
    root: usize,
) -> BTreeSet<usize> {
    let birth_parent: BTreeMap<usize, (usize, f64)> = tree
        .iter()
        .filter(|r| r.child_size > 1)
        .map(|r| (r.child, (r.parent, r.lambda)))
        .collect();
    let mut selected = BTreeSet::new();
    let mut processed = BTreeSet::new();
    for &leaf in leaves {
        let eps = birth_parent.get(&leaf).map_or(0.0, |&(_, l)| 1.0 / l);
        if eps < epsilon {
            if processed.contains(&leaf) {
                continue;
            }
            // Walk up to the first ancestor whose birth distance reaches ε.
            let mut node = leaf;
            let chosen = loop {
                let Some(&(parent, _)) = birth_parent.get(&node) else {
                    break node;
                };
                if parent == root {
                    break if allow_single { parent } else { node };
                }
                let parent_eps = birth_parent.get(&parent).map_or(0.0, |&(_, l)| 1.0 / l);
                if parent_eps > epsilon {
                    break parent;
                }
                node = parent;
            };
            selected.insert(chosen);
            for d in descendants(children, chosen) {
                processed.insert(d);
            }
        } else {
            selected.insert(leaf);
        }
    }
    selected
}

/// Selection, labels, probabilities and outlier scores from the condensed tree.
pub fn extract(tree: Vec<CondensedRow>, n: usize, cfg: &HdbscanConfig) -> HdbscanResult {
    let root = n;
    let mut stab = stability(&tree, n);
    let children = cluster_children(&tree);
    let mut nodes: Vec<usize> = stab.keys().copied().collect();
    nodes.sort_unstable_by(|a, b| b.cmp(a));
    if !cfg.allow_single_cluster {
        nodes.retain(|&c| c != root);
    }
    let mut is_cluster: BTreeMap<usize, bool> = nodes.iter().map(|&c| (c, true)).collect();
    match cfg.selection {
        ClusterSelection::ExcessOfMass => {
            for &node in &nodes {
                let sub: f64 = children
                    .get(&node)
                    .map(|c| {
                        c.iter()
                            .map(|ch| stab.get(ch).copied().unwrap_or(0.0))
                            .sum()
                    })
                    .unwrap_or(0.0);
                let own = stab.get(&node).copied().unwrap_or(0.0);
                if sub > own {
                    is_cluster.insert(node, false);
                    stab.insert(node, sub);
                } else {
                    for d in descendants(&children, node) {
                        if let Some(v) = is_cluster.get_mut(&d) {
                            *v = false;
                        }
                    }
                }
            }
            if cfg.cluster_selection_epsilon != 0.0 && !children.is_empty() {
                let eom: BTreeSet<usize> =
                    is_cluster.iter().filter(|e| *e.1).map(|e| *e.0).collect();
                let selected = epsilon_search(
                    &eom,
                    &tree,
                    &children,
                    cfg.cluster_selection_epsilon,
                    cfg.allow_single_cluster,
                    root,
                );
                for (c, v) in is_cluster.iter_mut() {
                    *v = selected.contains(c);
                }
            }
        }
        ClusterSelection::Leaf => {
            let leaves: BTreeSet<usize> = nodes
                .iter()
                .copied()
                .filter(|c| !children.contains_key(c))
                .collect();
            let selected = if cfg.cluster_selection_epsilon != 0.0 {
                epsilon_search(
                    &leaves,
                    &tree,
                    &children,
                    cfg.cluster_selection_epsilon,
                    cfg.allow_single_cluster,
                    root,
                )
            } else {
                leaves
            };
            for (c, v) in is_cluster.iter_mut() {
                *v = selected.contains(c);
            }
        }
    }
    let clusters: BTreeSet<usize> = is_cluster.iter().filter(|e| *e.1).map(|e| *e.0).collect();
    let label_of: BTreeMap<usize, i64> = clusters
        .iter()
        .enumerate()
        .map(|(i, &c)| (c, i as i64))
        .collect();

    // Each point's label: its nearest selected ancestor (the library's union-find labelling).
    let mut parent_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut point_row: Vec<Option<usize>> = vec![None; n];
    for (i, r) in tree.iter().enumerate() {
        parent_of.insert(r.child, r.parent);
        if r.child < n {
            point_row[r.child] = Some(i);
        }
    }
    let mut labels = vec![-1i64; n];
    for (p, label) in labels.iter_mut().enumerate() {
        let mut node = p;
        while let Some(&up) = parent_of.get(&node) {
            if let Some(&l) = label_of.get(&up) {
                *label = l;
                break;
            }
            node = up;
        }
        if *label >= 0 && clusters.contains(&root) && !cfg.allow_single_cluster {
            *label = -1;
        }
    }

    // deaths[c] = max λ over c's rows (max_lambdas).
    let mut deaths: BTreeMap<usize, f64> = BTreeMap::new();
    for r in &tree {
        let e = deaths.entry(r.parent).or_insert(f64::NEG_INFINITY);
        if r.lambda > *e {
            *e = r.lambda;
        }
    }
    let death = |c: usize, d: &BTreeMap<usize, f64>| d.get(&c).copied().unwrap_or(0.0);
    let cluster_ids: Vec<usize> = clusters.iter().copied().collect();
    let mut probabilities = vec![0.0f64; n];
    for (p, prob) in probabilities.iter_mut().enumerate() {
        if labels[p] < 0 {
            continue;
        }
        let cluster = cluster_ids.get(labels[p] as usize).copied().unwrap_or(root);
        let max_lambda = death(cluster, &deaths);
        let lambda = point_row[p].map_or(0.0, |i| tree[i].lambda);
        *prob = if max_lambda == 0.0 || !lambda.is_finite() {
            1.0
        } else {
            lambda.min(max_lambda) / max_lambda
        };
    }

    // GLOSH: propagate each cluster's deepest death to its ancestors (rows in reverse order).
    let mut glosh_deaths = deaths.clone();
    for r in tree.iter().rev() {
        let dc = death(r.child, &glosh_deaths);
        if dc > death(r.parent, &glosh_deaths) {
            glosh_deaths.insert(r.parent, dc);
        }
    }
    let mut outlier_scores = vec![0.0f64; n];
    for (p, score) in outlier_scores.iter_mut().enumerate() {
        let Some(i) = point_row[p] else { continue };
        let lambda_max = death(tree[i].parent, &glosh_deaths);
        let l = tree[i].lambda;
        *score = if lambda_max == 0.0 || !l.is_finite() {
            0.0
        } else {
            (lambda_max - l) / lambda_max
        };
    }
    let n_clusters = clusters.len();
    HdbscanResult {
        labels,
        probabilities,
        outlier_scores,
        condensed_tree: tree,
        n_clusters,
    }
}
