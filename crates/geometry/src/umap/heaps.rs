//! NN-descent's neighbour heaps, all points' in flat arrays with a stride of `k`.
//!
//! One point's heap is a binary max-heap on distance (the worst at index 0) of at most `k`
//! entries with "new" flags, as pynndescent's: a rejected candidate costs one comparison. The
//! heaps are stored flat (not one small vector per point) because NN-descent touches them at
//! random: a push reads the point's worst distance directly instead of following a pointer
//! first, and the candidate sampling scans all entries in one sequential pass.

use rayon::prelude::*;

/// The neighbour heaps of `n` points, `k` entries each at most.
pub(crate) struct Heaps {
    k: usize,
    len: Vec<u32>,
    idx: Vec<u32>,
    dist: Vec<f32>,
    new: Vec<bool>,
}

impl Heaps {
    /// `n` empty heaps of capacity `k`.
    pub(crate) fn new(n: usize, k: usize) -> Self {
        Self {
            k,
            len: vec![0; n],
            idx: vec![0; n * k],
            dist: vec![0.0; n * k],
            new: vec![false; n * k],
        }
    }

    /// Points.
    pub(crate) fn n(&self) -> usize {
        self.len.len()
    }

    /// Entries in point `i`'s heap.
    pub(crate) fn len(&self, i: usize) -> usize {
        self.len[i] as usize
    }

    /// The distance a candidate must beat to enter point `i`'s heap (∞ while it is not full).
    pub(crate) fn worst(&self, i: usize) -> f32 {
        if (self.len[i] as usize) < self.k {
            f32::INFINITY
        } else {
            self.dist[i * self.k]
        }
    }

    /// Every point's [`Heaps::worst`].
    pub(crate) fn thresholds(&self) -> Vec<f32> {
        (0..self.n())
            .into_par_iter()
            .map(|i| self.worst(i))
            .collect()
    }

    /// Point `i`'s entries (in heap order): indices, distances and "new" flags.
    pub(crate) fn entries(&self, i: usize) -> (&[u32], &[f32], &[bool]) {
        let r = i * self.k..i * self.k + self.len[i] as usize;
        (&self.idx[r.clone()], &self.dist[r.clone()], &self.new[r])
    }

    /// Point `i`'s heap, to push into.
    pub(crate) fn heap_mut(&mut self, i: usize) -> HeapMut<'_> {
        slot(
            self.k,
            (&mut self.len, &mut self.idx, &mut self.dist, &mut self.new),
            i,
        )
    }

    /// The heaps in contiguous blocks of `block` points, for one thread each.
    pub(crate) fn blocks_mut(&mut self, block: usize) -> Vec<HeapBlock<'_>> {
        let k = self.k;
        self.len
            .chunks_mut(block)
            .zip(self.idx.chunks_mut(block * k))
            .zip(self.dist.chunks_mut(block * k))
            .zip(self.new.chunks_mut(block * k))
            .map(|(((len, idx), dist), new)| HeapBlock {
                k,
                len,
                idx,
                dist,
                new,
            })
            .collect()
    }
}

/// A contiguous block of [`Heaps`].
pub(crate) struct HeapBlock<'a> {
    k: usize,
    len: &'a mut [u32],
    idx: &'a mut [u32],
    dist: &'a mut [f32],
    new: &'a mut [bool],
}

impl HeapBlock<'_> {
    /// Points in the block.
    pub(crate) fn n(&self) -> usize {
        self.len.len()
    }

    /// The block's `i`-th heap.
    pub(crate) fn heap_mut(&mut self, i: usize) -> HeapMut<'_> {
        slot(self.k, (self.len, self.idx, self.dist, self.new), i)
    }

    /// Clears the "new" flag of every entry of the block's `i`-th heap that `sampled` holds.
    pub(crate) fn mark_old(&mut self, i: usize, sampled: &[u32]) {
        let at = i * self.k;
        for s in at..at + self.len[i] as usize {
            if self.new[s] && sampled.contains(&self.idx[s]) {
                self.new[s] = false;
            }
        }
    }
}

/// The `i`-th heap of flat arrays with stride `k`.
fn slot<'a>(
    k: usize,
    (len, idx, dist, new): (&'a mut [u32], &'a mut [u32], &'a mut [f32], &'a mut [bool]),
    i: usize,
) -> HeapMut<'a> {
    let r = i * k..(i + 1) * k;
    HeapMut {
        len: &mut len[i],
        idx: &mut idx[r.clone()],
        dist: &mut dist[r.clone()],
        new: &mut new[r],
    }
}

/// One point's heap: its entry count and its `k` slots.
pub(crate) struct HeapMut<'a> {
    len: &'a mut u32,
    idx: &'a mut [u32],
    dist: &'a mut [f32],
    new: &'a mut [bool],
}

impl HeapMut<'_> {
    fn swap(&mut self, a: usize, b: usize) {
        self.idx.swap(a, b);
        self.dist.swap(a, b);
        self.new.swap(a, b);
    }

    /// Inserts `j` at distance `d` unless present or not better than the worst; returns
    /// whether the heap changed.
    pub(crate) fn push(&mut self, j: u32, d: f32) -> bool {
        let (len, k) = (*self.len as usize, self.idx.len());
        if len == k && d >= self.dist[0] {
            return false;
        }
        if self.idx[..len].contains(&j) {
            return false;
        }
        if len < k {
            (self.idx[len], self.dist[len], self.new[len]) = (j, d, true);
            *self.len += 1;
            let mut c = len;
            while c > 0 {
                let parent = (c - 1) / 2;
                if self.dist[parent] >= self.dist[c] {
                    break;
                }
                self.swap(parent, c);
                c = parent;
            }
            return true;
        }
        (self.idx[0], self.dist[0], self.new[0]) = (j, d, true);
        let mut c = 0;
        loop {
            let (l, r) = (2 * c + 1, 2 * c + 2);
            let mut big = c;
            if l < len && self.dist[l] > self.dist[big] {
                big = l;
            }
            if r < len && self.dist[r] > self.dist[big] {
                big = r;
            }
            if big == c {
                break;
            }
            self.swap(c, big);
            c = big;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Heaps;

    /// The heap keeps the k smallest distinct entries, rejects duplicates and non-improvements,
    /// and keeps its worst at the root.
    #[test]
    fn heap_keeps_the_k_best() {
        let mut h = Heaps::new(2, 4);
        let pushes = [
            (7, 0.7),
            (3, 0.3),
            (9, 0.9),
            (3, 0.1),
            (1, 0.1),
            (5, 0.5),
            (8, 0.95),
            (2, 0.2),
        ];
        let mut changed = Vec::new();
        for (j, d) in pushes {
            changed.push(h.heap_mut(1).push(j, d));
        }
        assert_eq!(
            changed,
            [true, true, true, false, true, true, false, true],
            "pushes that changed the heap"
        );
        let (idx, dist, new) = h.entries(1);
        let mut got: Vec<(u32, f32)> = idx.iter().copied().zip(dist.iter().copied()).collect();
        got.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(got, [(1, 0.1), (2, 0.2), (3, 0.3), (5, 0.5)]);
        assert!(new.iter().all(|&b| b));
        assert_eq!(h.worst(1), 0.5);
        assert_eq!(h.worst(0), f32::INFINITY);
        assert_eq!(h.len(0), 0);
    }
}
