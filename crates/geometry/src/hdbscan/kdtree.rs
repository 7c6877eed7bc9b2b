//! A kd-tree over row-major points (Euclidean): k-nearest-neighbour queries for core distances
//! and the nearest-other-component search of Borůvka's algorithm.

// Index loops over coordinates read more plainly than iterator chains here.
#![allow(clippy::needless_range_loop)]

/// Points per leaf: small leaves prune Borůvka's node pairs tightly.
const LEAF: usize = 8;
/// Nodes of at most this many points are scanned whole by the kNN search (the box tests of
/// small leaves cost it more than they save).
const KNN_SCAN: usize = 48;

/// Squared Euclidean distance (one summation order for every caller, so the weights of the
/// kNN, Prim and Borůvka paths are bit-identical).
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// One node: a contiguous range of the permutation (its bounding box is in
/// [`KdTree::bounds`]).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Children (`usize::MAX` for a leaf).
    pub(crate) left: usize,
    pub(crate) right: usize,
}

/// The tree.
#[derive(Debug, Clone)]
pub(crate) struct KdTree<'a> {
    pub(crate) points: &'a [f64],
    pub(crate) dim: usize,
    /// Point ids in tree order.
    pub(crate) idx: Vec<usize>,
    pub(crate) nodes: Vec<Node>,
    /// `[nodes, 2, dim]`: each node's box, lower corner then upper, in one array (the searches
    /// read a box per visited node).
    bounds: Vec<f64>,
    /// The points in tree order (`ordered[pos]` is point `idx[pos]`): the kNN scan of a node
    /// reads one contiguous block instead of gathering rows from all over `points`.
    ordered: Vec<f64>,
}

impl<'a> KdTree<'a> {
    pub(crate) fn new(points: &'a [f64], n: usize, dim: usize) -> Self {
        let mut t = KdTree {
            points,
            dim,
            idx: (0..n).collect(),
            nodes: Vec::new(),
            bounds: Vec::new(),
            ordered: Vec::new(),
        };
        if n > 0 {
            t.build(0, n);
        }
        t.ordered = t.idx.iter().flat_map(|&i| t.point(i)).copied().collect();
        t
    }

    pub(crate) fn point(&self, i: usize) -> &[f64] {
        &self.points[i * self.dim..(i + 1) * self.dim]
    }

    fn build(&mut self, start: usize, end: usize) -> usize {
        let dim = self.dim;
        let mut lo = vec![f64::INFINITY; dim];
        let mut hi = vec![f64::NEG_INFINITY; dim];
        for &i in &self.idx[start..end] {
            let p = &self.points[i * dim..(i + 1) * dim];
            for d in 0..dim {
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        let id = self.nodes.len();
        self.nodes.push(Node {
            start,
            end,
            left: usize::MAX,
            right: usize::MAX,
        });
        self.bounds.extend_from_slice(&lo);
        self.bounds.extend_from_slice(&hi);
        if end - start > LEAF {
            let split = (0..dim)
                .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
                .unwrap_or(0);
            if hi[split] > lo[split] {
                let mid = (start + end) / 2;
                let pts = self.points;
                self.idx[start..end].select_nth_unstable_by(mid - start, |&a, &b| {
                    pts[a * dim + split].total_cmp(&pts[b * dim + split])
                });
                let l = self.build(start, mid);
                let r = self.build(mid, end);
                self.nodes[id].left = l;
                self.nodes[id].right = r;
            }
        }
        id
    }

    /// Squared distance from `p` to node `n`'s box.
    pub(crate) fn box_dist2(&self, n: usize, p: &[f64]) -> f64 {
        let dim = self.dim;
        let (lo, hi) = self.bounds[2 * n * dim..2 * (n + 1) * dim].split_at(dim);
        let mut s = 0.0;
        for d in 0..dim {
            let v = p[d];
            let e = if v < lo[d] {
                lo[d] - v
            } else if v > hi[d] {
                v - hi[d]
            } else {
                0.0
            };
            s += e * e;
        }
        s
    }

    /// Squared distance between the boxes of nodes `a` and `b`.
    pub(crate) fn box_box_dist2(&self, a: usize, b: usize) -> f64 {
        let dim = self.dim;
        let (alo, ahi) = self.bounds[2 * a * dim..2 * (a + 1) * dim].split_at(dim);
        let (blo, bhi) = self.bounds[2 * b * dim..2 * (b + 1) * dim].split_at(dim);
        let mut s = 0.0;
        for d in 0..dim {
            let e = (alo[d] - bhi[d]).max(blo[d] - ahi[d]).max(0.0);
            s += e * e;
        }
        s
    }

    /// The `k` nearest points of `p` (the point itself included when it is in the tree) as
    /// (squared distance, id), nearest first; equal distances in the order the search met them.
    pub(crate) fn knn(&self, p: &[f64], k: usize) -> Vec<(f64, u32)> {
        let mut best = Vec::with_capacity(k + 1);
        self.knn_rec(0, self.box_dist2(0, p), p, k, &mut best);
        best
    }

    /// `box_d2`: the squared distance from `p` to node `n`'s box (computed once, by the parent,
    /// to order the children).
    fn knn_rec(&self, n: usize, box_d2: f64, p: &[f64], k: usize, best: &mut Vec<(f64, u32)>) {
        if best.len() == k && box_d2 > best[k - 1].0 {
            return;
        }
        let node = &self.nodes[n];
        if node.left == usize::MAX || node.end - node.start <= KNN_SCAN {
            let dim = self.dim;
            let rows = self.ordered[node.start * dim..node.end * dim].chunks_exact(dim);
            for (&i, q) in self.idx[node.start..node.end].iter().zip(rows) {
                let d = sq_dist(p, q);
                if best.len() < k || d < best[k - 1].0 {
                    let at = best.partition_point(|x| x.0 <= d);
                    best.insert(at, (d, i as u32));
                    best.truncate(k);
                }
            }
            return;
        }
        let (l, r) = (node.left, node.right);
        let (dl, dr) = (self.box_dist2(l, p), self.box_dist2(r, p));
        if dl <= dr {
            self.knn_rec(l, dl, p, k, best);
            self.knn_rec(r, dr, p, k, best);
        } else {
            self.knn_rec(r, dr, p, k, best);
            self.knn_rec(l, dl, p, k, best);
        }
    }
}
