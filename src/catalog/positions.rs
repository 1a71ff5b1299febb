//! Where each webhook of a snapshot is, by id (pure): (hash of id, position) pairs kept
//! sorted, each found confirmed against the webhook there. A snapshot made after a change
//! copies this one flat buffer instead of a map of 100,000 id strings (which took most of
//! the time a new webhook took to reach matching).

use std::hash::{DefaultHasher, Hash, Hasher};

#[derive(Debug, Clone, Default)]
pub struct Positions(Vec<(u64, u32)>);

fn key(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

impl Positions {
    pub fn new<'a>(ids: impl Iterator<Item = &'a str>) -> Self {
        let mut pairs: Vec<(u64, u32)> = ids
            .enumerate()
            .map(|(at, id)| (key(id), at as u32))
            .collect();
        pairs.sort_unstable();
        Positions(pairs)
    }

    /// The positions that may hold `id` (one, unless two ids share a hash): the caller
    /// keeps the one whose webhook has it.
    pub fn candidates(&self, id: &str) -> impl Iterator<Item = usize> + '_ {
        let key = key(id);
        let start = self.0.partition_point(|&(k, _)| k < key);
        self.0[start..]
            .iter()
            .take_while(move |&&(k, _)| k == key)
            .map(|&(_, at)| at as usize)
    }

    pub fn insert(&mut self, id: &str, at: usize) {
        let entry = (key(id), at as u32);
        let i = self.0.partition_point(|&e| e < entry);
        self.0.insert(i, entry);
    }

    /// After the webhooks at `gone` (ascending) were taken out: their entries go, and every
    /// other moves to `moved[old position]`. The order holds: `moved` never reorders.
    pub fn renumber(&mut self, gone: &[usize], moved: &[u32]) {
        self.0
            .retain(|&(_, at)| gone.binary_search(&(at as usize)).is_err());
        for (_, at) in &mut self.0 {
            *at = moved[*at as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_and_renumbers() {
        let ids = ["a", "b", "c", "d"];
        let mut positions = Positions::new(ids.iter().copied());
        for (at, id) in ids.iter().enumerate() {
            assert!(positions.candidates(id).any(|p| p == at), "{id}");
        }
        assert_eq!(positions.candidates("e").count(), 0);
        positions.insert("e", 4);
        assert_eq!(positions.candidates("e").collect::<Vec<_>>(), [4]);
        // b and d deleted: c moves to 1, e to 2.
        positions.renumber(&[1, 3], &[0, 1, 1, 2, 2]);
        assert_eq!(positions.candidates("b").count(), 0);
        assert_eq!(positions.candidates("d").count(), 0);
        assert_eq!(positions.candidates("a").collect::<Vec<_>>(), [0]);
        assert_eq!(positions.candidates("c").collect::<Vec<_>>(), [1]);
        assert_eq!(positions.candidates("e").collect::<Vec<_>>(), [2]);
    }
}
