//! A kd-tree over row-major points (Euclidean): k-nearest-neighbour queries for core distances
//! and the nearest-other-component search of Borůvka's algorithm.

// Index loops over coordinates read more plainly than iterator chains here.
#![allow(clippy::needless_range_loop)]

const LEAF: usize = 24;

/// One node: a contiguous range of the permutation and its bounding box.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) lo: Vec<f64>,
    pub(crate) hi: Vec<f64>,
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
}

impl<'a> KdTree<'a> {
    pub(crate) fn new(points: &'a [f64], n: usize, dim: usize) -> Self {
        let mut t = KdTree {
            points,
            dim,
            idx: (0..n).collect(),
            nodes: Vec::new(),
        };
        if n > 0 {
            t.build(0, n);
        }
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
            lo: lo.clone(),
            hi: hi.clone(),
            left: usize::MAX,
            right: usize::MAX,
        });
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
        let node = &self.nodes[n];
        let mut s = 0.0;
        for d in 0..self.dim {
            let v = p[d];
            let e = if v < node.lo[d] {
                node.lo[d] - v
            } else if v > node.hi[d] {
                v - node.hi[d]
            } else {
                0.0
            };
            s += e * e;
        }
        s
    }

    /// The distance to the `k`-th nearest point of `p` (the point itself included when it is in
    /// the tree), as a kNN query with k neighbours.
    pub(crate) fn kth_distance(&self, p: &[f64], k: usize) -> f64 {
        let mut best: Vec<f64> = Vec::with_capacity(k + 1); // sorted squared distances
        self.knn_rec(0, p, k, &mut best);
        best.get(k - 1).copied().unwrap_or(f64::INFINITY).sqrt()
    }

    fn knn_rec(&self, n: usize, p: &[f64], k: usize, best: &mut Vec<f64>) {
        let worst = if best.len() < k {
            f64::INFINITY
        } else {
            best[k - 1]
        };
        if self.box_dist2(n, p) > worst {
            return;
        }
        let node = &self.nodes[n];
        if node.left == usize::MAX {
            for &i in &self.idx[node.start..node.end] {
                let q = self.point(i);
                let d: f64 = p.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
                if best.len() < k || d < best[k - 1] {
                    let at = best.partition_point(|&x| x <= d);
                    best.insert(at, d);
                    best.truncate(k);
                }
            }
            return;
        }
        let (l, r) = (node.left, node.right);
        let (first, second) = if self.box_dist2(l, p) <= self.box_dist2(r, p) {
            (l, r)
        } else {
            (r, l)
        };
        self.knn_rec(first, p, k, best);
        self.knn_rec(second, p, k, best);
    }
}
