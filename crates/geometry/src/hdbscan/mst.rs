//! Core distances and the exact minimum spanning tree of the mutual-reachability graph.

use rayon::prelude::*;

use crate::hdbscan::kdtree::sq_dist;

fn dist(a: &[f64], b: &[f64]) -> f64 {
    sq_dist(a, b).sqrt()
}

/// Whether a squared distance certainly exceeds the weight `best` (compared squared, with a
/// margin far above rounding, so its square root would exceed `best` too).
fn beyond(d2: f64, best: f64) -> bool {
    d2 > best * best * (1.0 + 1e-9)
}

/// The minimum of `values` under every tree node, into `out` (children come after parents in
/// `nodes`, so a reverse pass sees children first).
fn node_minima(tree: &crate::hdbscan::kdtree::KdTree<'_>, values: &[f64], out: &mut [f64]) {
    for (id, node) in tree.nodes.iter().enumerate().rev() {
        out[id] = if node.left == usize::MAX {
            tree.idx[node.start..node.end]
                .iter()
                .map(|&i| values[i])
                .fold(f64::INFINITY, f64::min)
        } else {
            out[node.left].min(out[node.right])
        };
    }
}

/// Each point's distance to its `min_samples`-th nearest *other* point (the library queries
/// `min_samples + 1` neighbours, the point itself included, and takes the last).
pub fn core_distances(points: &[f64], n: usize, dim: usize, min_samples: usize) -> Vec<f64> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            let p = &points[i * dim..(i + 1) * dim];
            // The k smallest distances with the point itself (distance 0) among them.
            let k = min_samples + 1;
            let mut best: Vec<f64> = Vec::with_capacity(k + 1);
            for j in 0..n {
                let d = dist(p, &points[j * dim..(j + 1) * dim]);
                if best.len() < k {
                    let pos = best.partition_point(|&b| b <= d);
                    best.insert(pos, d);
                } else if d < best[k - 1] {
                    best.pop();
                    let pos = best.partition_point(|&b| b <= d);
                    best.insert(pos, d);
                }
            }
            best[k - 1]
        })
        .collect()
}

/// Prim's algorithm on mutual reachability max(core_a, core_b, d_ab), as the library's
/// `mst_linkage_core_vector`: returns n − 1 edges (source, b, weight) in the order they join the
/// tree, where `source` is the tree node that gave `b` its distance (not necessarily the node
/// added last).
pub fn prim_mst(points: &[f64], n: usize, dim: usize, core: &[f64]) -> Vec<(usize, usize, f64)> {
    let mut in_tree = vec![false; n];
    // Each outside point's best distance to the tree so far, and the tree node it came from.
    let mut current: Vec<(f64, usize)> = vec![(f64::INFINITY, 0); n];
    let mut edges = Vec::with_capacity(n.saturating_sub(1));
    let mut node = 0usize;
    for _ in 1..n {
        in_tree[node] = true;
        let cp = &points[node * dim..(node + 1) * dim];
        let core_c = core[node];
        // Update the candidate distances in parallel, then pick the nearest (ties: lowest index,
        // as the library's serial scan).
        let (new_d, new_node, source) = current
            .par_iter_mut()
            .enumerate()
            .filter(|(j, _)| !in_tree[*j])
            .map(|(j, cur)| {
                let mut reach = dist(cp, &points[j * dim..(j + 1) * dim]);
                reach = reach.max(core_c).max(core[j]);
                if reach < cur.0 {
                    *cur = (reach, node);
                }
                (cur.0, j, cur.1)
            })
            .reduce(
                || (f64::INFINITY, usize::MAX, 0),
                |a, b| {
                    if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) {
                        b
                    } else {
                        a
                    }
                },
            );
        edges.push((source, new_node, new_d));
        node = new_node;
    }
    edges
}

/// Neighbours kept per point for Borůvka's candidate edges (at least `min_samples + 1`).
const CANDIDATES: usize = 8;

/// Each point's nearest points by a kd-tree search (itself included, as the library's kNN
/// query): the core distances, and the candidate edges that settle most of Borůvka's searches.
pub(crate) struct Neighbours {
    /// Neighbours per point.
    k: usize,
    /// `[n, k]` squared distances and ids, nearest first.
    lists: Vec<(f64, u32)>,
}

impl Neighbours {
    /// The `max(min_samples + 1, CANDIDATES)` nearest points of every point (at most n).
    pub(crate) fn new(
        tree: &crate::hdbscan::kdtree::KdTree<'_>,
        n: usize,
        min_samples: usize,
    ) -> Self {
        let k = (min_samples + 1).max(CANDIDATES).min(n);
        // Queried in tree order (neighbouring queries walk the same nodes: cache-friendly), then
        // scattered back to point order.
        let found: Vec<Vec<(f64, u32)>> = tree
            .idx
            .par_iter()
            .map(|&i| tree.knn(tree.point(i), k))
            .collect();
        let mut lists = vec![(0.0, 0u32); n * k];
        for (&i, row) in tree.idx.iter().zip(&found) {
            lists[i * k..i * k + row.len()].copy_from_slice(row);
        }
        Self { k, lists }
    }

    fn row(&self, i: usize) -> &[(f64, u32)] {
        &self.lists[i * self.k..(i + 1) * self.k]
    }

    /// The library's core distance: the distance to the `min_samples + 1`-th nearest point,
    /// the point itself included.
    pub(crate) fn core_distances(&self, min_samples: usize) -> Vec<f64> {
        (0..self.lists.len() / self.k.max(1))
            .map(|i| self.row(i)[min_samples].0.sqrt())
            .collect()
    }
}

/// Borůvka's algorithm on the mutual-reachability graph with a kd-tree: each round every
/// component takes its lightest edge to another component. Exact; ties are broken by
/// (weight, smaller endpoint, larger endpoint), so the tree is the same as any exact MST up to
/// equal-weight swaps, and the same whatever the thread count.
///
/// Each round, per component (in parallel over components):
/// 1. its points' neighbour lists give candidate edges (most of the first rounds' answers);
/// 2. its maximal single-component tree nodes then search the tree as a whole (dual-tree: a
///    pair of nodes is skipped when max(min core, min core, box-to-box distance) exceeds the
///    component's best so far), and its points in mixed leaves search it one by one.
///
/// A per-point lower bound on the lightest edge outside the list (the list's last distance,
/// raised every round to the component's best, as the other components only shrink) skips
/// the points and nodes that cannot beat the best. Against the previous point-by-point
/// search: 0.13 s instead of 0.43 s for 24 576 points in 10-D.
pub(crate) fn boruvka_mst(
    tree: &crate::hdbscan::kdtree::KdTree<'_>,
    n: usize,
    core: &[f64],
    neighbours: &Neighbours,
) -> Vec<(usize, usize, f64)> {
    let nodes = tree.nodes.len();
    // Minimum core distance under every node.
    let mut node_min_core = vec![f64::INFINITY; nodes];
    node_minima(tree, core, &mut node_min_core);
    // A lower bound on each point's lightest edge to another component outside its list:
    // every point outside the list is at least as far as the list's last. It only rises from
    // round to round (the other components shrink), by each round's best.
    let mut lower: Vec<f64> = (0..n)
        .map(|i| {
            let last = neighbours.row(i).last().map_or(0.0, |x| x.0.sqrt());
            core[i].max(last)
        })
        .collect();
    let mut node_min_lower = vec![f64::INFINITY; nodes];
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut edges = Vec::with_capacity(n.saturating_sub(1));
    let mut n_comp = n;
    while n_comp > 1 {
        let comp: Vec<usize> = (0..n).map(|i| find(&mut parent, i)).collect();
        // Component held uniformly by each node (usize::MAX when mixed); children come after
        // parents in `nodes`, so a reverse pass sees children first.
        let mut node_comp = vec![usize::MAX; nodes];
        for (id, node) in tree.nodes.iter().enumerate().rev() {
            node_comp[id] = if node.left == usize::MAX {
                let c0 = comp[tree.idx[node.start]];
                if tree.idx[node.start..node.end]
                    .iter()
                    .all(|&i| comp[i] == c0)
                {
                    c0
                } else {
                    usize::MAX
                }
            } else if node_comp[node.left] == node_comp[node.right] {
                node_comp[node.left]
            } else {
                usize::MAX
            };
        }
        node_minima(tree, &lower, &mut node_min_lower);
        // Each component's queries: its maximal single-component nodes, and its points in
        // mixed leaves. A component's queries share one bound, so once any of them found a
        // light edge the others prune against it.
        let mut queries: std::collections::HashMap<usize, Vec<Query>> =
            std::collections::HashMap::new();
        let mut stack = vec![0usize];
        while let Some(id) = stack.pop() {
            let node = &tree.nodes[id];
            if node_comp[id] != usize::MAX {
                queries
                    .entry(node_comp[id])
                    .or_default()
                    .push(Query::Node(id));
            } else if node.left == usize::MAX {
                for at in node.start..node.end {
                    queries
                        .entry(comp[tree.idx[at]])
                        .or_default()
                        .push(Query::Point(at));
                }
            } else {
                stack.push(node.right);
                stack.push(node.left);
            }
        }
        let groups: Vec<(usize, Vec<Query>)> = queries.into_iter().collect();
        let round = Round {
            tree,
            comp: &comp,
            node_comp: &node_comp,
            node_min_core: &node_min_core,
            node_min_lower: &node_min_lower,
            lower: &lower,
            core,
        };
        let comp_best: Vec<(usize, (f64, usize, usize))> = groups
            .par_iter()
            .map(|(c, qs)| {
                let mut best = (f64::INFINITY, usize::MAX, usize::MAX);
                let points = |q: &Query| match *q {
                    Query::Node(id) => &tree.idx[tree.nodes[id].start..tree.nodes[id].end],
                    Query::Point(at) => &tree.idx[at..=at],
                };
                for &i in qs.iter().flat_map(points) {
                    for &(d2, j) in neighbours.row(i) {
                        let j = j as usize;
                        if comp[j] != *c {
                            let w = d2.sqrt().max(core[i]).max(core[j]);
                            let cand = (w, i.min(j), i.max(j));
                            if cand < best {
                                best = cand;
                            }
                        }
                    }
                }
                for q in qs {
                    match *q {
                        Query::Node(id) => {
                            if node_min_lower[id] <= best.0 {
                                round.dual(id, 0, *c, &mut best);
                            }
                        }
                        Query::Point(at) => {
                            let i = tree.idx[at];
                            if lower[i] <= best.0 {
                                let root_lb = tree.box_dist2(0, tree.point(i)).sqrt();
                                round.search(0, root_lb, i, &mut best);
                            }
                        }
                    }
                }
                (*c, best)
            })
            .filter(|b| b.1.1 != usize::MAX)
            .collect();
        // Every point's lightest edge weighs at least its component's lightest.
        let mut comp_min = vec![f64::NEG_INFINITY; n];
        for &(c, b) in &comp_best {
            comp_min[c] = b.0;
        }
        lower
            .par_iter_mut()
            .zip(&comp)
            .for_each(|(l, &c)| *l = l.max(comp_min[c]));
        let mut chosen: Vec<(f64, usize, usize)> = comp_best.into_iter().map(|b| b.1).collect();
        chosen.sort_by(|x, y| x.0.total_cmp(&y.0).then((x.1, x.2).cmp(&(y.1, y.2))));
        let before = n_comp;
        for (w, a, b) in chosen {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
                edges.push((a, b, w));
                n_comp -= 1;
            }
        }
        if n_comp == before {
            break; // disconnected (cannot happen for a complete graph)
        }
    }
    edges
}

/// One Borůvka search: a single-component node, or a point of a mixed leaf (by its position
/// in the tree's permutation).
#[derive(Debug, Clone, Copy)]
enum Query {
    Node(usize),
    Point(usize),
}

/// What one Borůvka round's searches read.
struct Round<'a> {
    tree: &'a crate::hdbscan::kdtree::KdTree<'a>,
    comp: &'a [usize],
    node_comp: &'a [usize],
    node_min_core: &'a [f64],
    node_min_lower: &'a [f64],
    lower: &'a [f64],
    core: &'a [f64],
}

impl Round<'_> {
    /// Offers the edge (i, j) to `best`.
    fn offer(&self, i: usize, j: usize, best: &mut (f64, usize, usize)) {
        let cores = self.core[i].max(self.core[j]);
        if cores > best.0 {
            return;
        }
        let d2 = sq_dist(self.tree.point(i), self.tree.point(j));
        if beyond(d2, best.0) {
            return;
        }
        let cand = (d2.sqrt().max(cores), i.min(j), i.max(j));
        if cand < *best {
            *best = cand;
        }
    }

    /// The lightest edges from the points of node `q` (all of component `c`) into node `r`: a
    /// pair of nodes is skipped when `r` holds only component `c`, or when
    /// max(min core in q, min core in r, box-to-box distance) exceeds the best so far.
    fn dual(&self, q: usize, r: usize, c: usize, best: &mut (f64, usize, usize)) {
        let tree = self.tree;
        if self.node_comp[r] == c || self.node_min_lower[q] > best.0 {
            return;
        }
        let lb = self.node_min_core[q]
            .max(self.node_min_core[r])
            .max(tree.box_box_dist2(q, r).sqrt());
        if lb > best.0 {
            return;
        }
        let (qn, rn) = (&tree.nodes[q], &tree.nodes[r]);
        let (q_leaf, r_leaf) = (qn.left == usize::MAX, rn.left == usize::MAX);
        if q_leaf && r_leaf {
            for &i in &tree.idx[qn.start..qn.end] {
                if self.lower[i] > best.0 || beyond(tree.box_dist2(r, tree.point(i)), best.0) {
                    continue;
                }
                for &j in &tree.idx[rn.start..rn.end] {
                    if self.comp[j] != c {
                        self.offer(i, j, best);
                    }
                }
            }
        } else if !r_leaf && (q_leaf || rn.end - rn.start >= qn.end - qn.start) {
            let (l, rr) = (rn.left, rn.right);
            if tree.box_box_dist2(q, l) <= tree.box_box_dist2(q, rr) {
                self.dual(q, l, c, best);
                self.dual(q, rr, c, best);
            } else {
                self.dual(q, rr, c, best);
                self.dual(q, l, c, best);
            }
        } else {
            self.dual(qn.left, r, c, best);
            self.dual(qn.right, r, c, best);
        }
    }

    /// The lightest edge from point `i` into node `node` (`box_dist`: the point's distance to
    /// the node's box): a node is skipped when it holds only the point's own component or when
    /// max(core_i, min core in node, box distance) exceeds the best so far.
    fn search(&self, node: usize, box_dist: f64, i: usize, best: &mut (f64, usize, usize)) {
        let tree = self.tree;
        if self.node_comp[node] == self.comp[i] {
            return;
        }
        let lb = self.core[i].max(self.node_min_core[node]).max(box_dist);
        if lb > best.0 {
            return;
        }
        let nd = &tree.nodes[node];
        if nd.left == usize::MAX {
            for &j in &tree.idx[nd.start..nd.end] {
                if self.comp[j] != self.comp[i] {
                    self.offer(i, j, best);
                }
            }
            return;
        }
        let p = tree.point(i);
        let (l, r) = (nd.left, nd.right);
        let (dl, dr) = (tree.box_dist2(l, p).sqrt(), tree.box_dist2(r, p).sqrt());
        if dl <= dr {
            self.search(l, dl, i, best);
            self.search(r, dr, i, best);
        } else {
            self.search(r, dr, i, best);
            self.search(l, dl, i, best);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hdbscan::kdtree::KdTree;

    fn lcg(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 10.0
            })
            .collect()
    }

    /// Borůvka by brute force: every round, each component's lexicographically least
    /// (weight, smaller endpoint, larger endpoint) edge over all pairs.
    fn brute_boruvka(pts: &[f64], n: usize, dim: usize, core: &[f64]) -> Vec<(usize, usize, f64)> {
        let mut comp: Vec<usize> = (0..n).collect();
        let mut edges = Vec::new();
        while edges.len() + 1 < n {
            let mut best = vec![(f64::INFINITY, usize::MAX, usize::MAX); n];
            for i in 0..n {
                for j in i + 1..n {
                    if comp[i] == comp[j] {
                        continue;
                    }
                    let w = dist(&pts[i * dim..(i + 1) * dim], &pts[j * dim..(j + 1) * dim])
                        .max(core[i])
                        .max(core[j]);
                    for c in [comp[i], comp[j]] {
                        if (w, i, j) < best[c] {
                            best[c] = (w, i, j);
                        }
                    }
                }
            }
            let mut chosen: Vec<_> = best.into_iter().filter(|b| b.1 != usize::MAX).collect();
            chosen.sort_by(|x, y| x.0.total_cmp(&y.0).then((x.1, x.2).cmp(&(y.1, y.2))));
            for (w, a, b) in chosen {
                let (ca, cb) = (comp[a], comp[b]);
                if ca != cb {
                    let (lo, hi) = (ca.min(cb), ca.max(cb));
                    comp.iter_mut().filter(|c| **c == hi).for_each(|c| *c = lo);
                    edges.push((a, b, w));
                }
            }
        }
        edges
    }

    /// The tree search (neighbour lists, node pairs, carried bounds) gives the brute-force
    /// Borůvka edge for edge, on tie-heavy inputs too (coordinates on a coarse grid, with
    /// duplicates).
    #[test]
    fn boruvka_search_equals_brute_force() {
        for (seed, n, dim, ms, grid) in [
            (4u64, 400usize, 2usize, 3usize, 0.0),
            (5, 400, 2, 5, 0.5),
            (6, 300, 3, 1, 1.0),
            (7, 350, 10, 4, 0.0),
            (8, 300, 10, 2, 2.5),
            (9, 500, 3, 1, 2.0),
            (10, 600, 2, 1, 1.0),
            (11, 500, 3, 2, 3.0),
            (12, 800, 2, 2, 2.0),
        ] {
            let mut pts = lcg(seed, n * dim);
            if grid > 0.0 {
                pts.iter_mut().for_each(|v| *v = (*v / grid).round() * grid);
            }
            let tree = KdTree::new(&pts, n, dim);
            let neighbours = Neighbours::new(&tree, n, ms);
            let core = neighbours.core_distances(ms);
            let want = brute_boruvka(&pts, n, dim, &core);
            let got = boruvka_mst(&tree, n, &core, &neighbours);
            assert_eq!(
                got, want,
                "seed {seed}, {n} × {dim}, min_samples {ms}, grid {grid}"
            );
        }
    }

    #[test]
    fn boruvka_equals_prim() {
        for (seed, n, dim, ms) in [
            (1u64, 300usize, 2usize, 3usize),
            (2, 500, 10, 5),
            (3, 257, 3, 1),
        ] {
            let pts = lcg(seed, n * dim);
            let core = core_distances(&pts, n, dim, ms);
            let tree = KdTree::new(&pts, n, dim);
            let neighbours = Neighbours::new(&tree, n, ms);
            let core_t = neighbours.core_distances(ms);
            for (a, b) in core.iter().zip(&core_t) {
                assert!((a - b).abs() < 1e-12, "core distances differ: {a} vs {b}");
            }
            let prim = prim_mst(&pts, n, dim, &core);
            let bor = boruvka_mst(&tree, n, &core, &neighbours);
            assert_eq!(bor.len(), n - 1);
            let (wp, wb): (f64, f64) = (
                prim.iter().map(|e| e.2).sum(),
                bor.iter().map(|e| e.2).sum(),
            );
            assert!(
                (wp - wb).abs() < 1e-9 * wp.max(1.0),
                "total weight {wp} vs {wb}"
            );
            let mut p: Vec<f64> = prim.iter().map(|e| e.2).collect();
            let mut b: Vec<f64> = bor.iter().map(|e| e.2).collect();
            p.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            assert_eq!(p, b, "edge weights differ");
        }
    }
}
