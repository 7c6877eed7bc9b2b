//! Core distances and the exact minimum spanning tree of the mutual-reachability graph.

use rayon::prelude::*;

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
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

/// Core distances through a kd-tree (the library's `min_samples + 1`-th neighbour, the point
/// itself included), O(n log n) in low dimension.
pub(crate) fn core_distances_kdtree(
    tree: &crate::hdbscan::kdtree::KdTree<'_>,
    n: usize,
    min_samples: usize,
) -> Vec<f64> {
    (0..n)
        .into_par_iter()
        .map(|i| tree.kth_distance(tree.point(i), min_samples + 1))
        .collect()
}

/// Borůvka's algorithm on the mutual-reachability graph with a kd-tree: each round every
/// component takes its lightest edge to another component (found per point by a pruned tree
/// search: a node is skipped when it holds only the point's own component or when
/// max(core_i, min core in node, box distance) cannot beat the best so far). Exact; ties are
/// broken by (weight, smaller endpoint, larger endpoint), so the tree is the same as any exact
/// MST up to equal-weight swaps.
pub(crate) fn boruvka_mst(
    tree: &crate::hdbscan::kdtree::KdTree<'_>,
    n: usize,
    core: &[f64],
) -> Vec<(usize, usize, f64)> {
    let nodes = tree.nodes.len();
    // Minimum core distance under every node.
    let mut node_min_core = vec![f64::INFINITY; nodes];
    for (id, node) in tree.nodes.iter().enumerate().rev() {
        node_min_core[id] = tree.idx[node.start..node.end]
            .iter()
            .map(|&i| core[i])
            .fold(f64::INFINITY, f64::min);
    }
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
        // Points grouped by component; each component's points share one bound, so once any
        // of them found a light edge the others prune against it.
        let mut members: std::collections::HashMap<usize, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, &c) in comp.iter().enumerate() {
            members.entry(c).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = members.into_values().collect();
        let comp_best: Vec<(f64, usize, usize)> = groups
            .par_iter()
            .map(|pts| {
                let mut best = (f64::INFINITY, usize::MAX, usize::MAX);
                for &i in pts {
                    let root_lb = tree.box_dist2(0, tree.point(i)).sqrt();
                    search(
                        tree,
                        0,
                        root_lb,
                        i,
                        &comp,
                        &node_comp,
                        &node_min_core,
                        core,
                        &mut best,
                    );
                }
                best
            })
            .filter(|b| b.1 != usize::MAX)
            .collect();
        let mut chosen = comp_best;
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

#[allow(clippy::too_many_arguments)]
fn search(
    tree: &crate::hdbscan::kdtree::KdTree<'_>,
    node: usize,
    box_dist: f64,
    i: usize,
    comp: &[usize],
    node_comp: &[usize],
    node_min_core: &[f64],
    core: &[f64],
    best: &mut (f64, usize, usize),
) {
    if node_comp[node] == comp[i] {
        return;
    }
    let p = tree.point(i);
    let lb = core[i].max(node_min_core[node]).max(box_dist);
    if lb > best.0 {
        return;
    }
    let nd = &tree.nodes[node];
    if nd.left == usize::MAX {
        for &j in &tree.idx[nd.start..nd.end] {
            if comp[j] == comp[i] {
                continue;
            }
            let d = dist(p, tree.point(j)).max(core[i]).max(core[j]);
            let cand = (d, i.min(j), i.max(j));
            if cand < *best {
                *best = cand;
            }
        }
        return;
    }
    let (l, r) = (nd.left, nd.right);
    let (dl, dr) = (tree.box_dist2(l, p).sqrt(), tree.box_dist2(r, p).sqrt());
    if dl <= dr {
        search(tree, l, dl, i, comp, node_comp, node_min_core, core, best);
        search(tree, r, dr, i, comp, node_comp, node_min_core, core, best);
    } else {
        search(tree, r, dr, i, comp, node_comp, node_min_core, core, best);
        search(tree, l, dl, i, comp, node_comp, node_min_core, core, best);
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
            let core_t = core_distances_kdtree(&tree, n, ms);
            for (a, b) in core.iter().zip(&core_t) {
                assert!((a - b).abs() < 1e-12, "core distances differ: {a} vs {b}");
            }
            let prim = prim_mst(&pts, n, dim, &core);
            let bor = boruvka_mst(&tree, n, &core);
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
