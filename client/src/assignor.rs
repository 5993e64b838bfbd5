//! The classic consumer protocol's partition assignors, as Kafka's clients compute them:
//! pure functions from the members' subscriptions and the partition counts to each member's
//! partitions. The group leader runs one (the one every member supports, in the order the
//! members prefer) and sends the result in SyncGroup.

use std::collections::BTreeMap;

/// An assignment strategy of the classic protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Kafka's `range`: per topic, consecutive partitions to members in member-id order,
    /// the first `partitions % members` getting one more.
    Range,
    /// Kafka's `roundrobin`: every subscribed partition, sorted, dealt to the members in
    /// turn (skipping members not subscribed to its topic).
    RoundRobin,
}

impl Assignor {
    /// The protocol name sent in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    /// The assignor called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }
}

/// Member id -> topic -> partitions.
pub(crate) type Assignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// Assigns the partitions of `partitions` (topic -> count) to `members` (member id -> the
/// topics it subscribes to). Every member appears in the result, possibly with nothing.
pub(crate) fn assign(
    assignor: Assignor,
    members: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = members
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    match assignor {
        Assignor::Range => {
            for (topic, count) in partitions {
                let subscribed: Vec<&String> = members
                    .iter()
                    .filter(|(_, topics)| topics.contains(topic))
                    .map(|(m, _)| m)
                    .collect();
                if subscribed.is_empty() {
                    continue;
                }
                let n = subscribed.len() as i32;
                let (per, extra) = (count / n, count % n);
                let mut next = 0;
                for (i, member) in subscribed.into_iter().enumerate() {
                    let take = per + i32::from((i as i32) < extra);
                    if take > 0 {
                        out.entry(member.clone())
                            .or_default()
                            .insert(topic.clone(), (next..next + take).collect());
                    }
                    next += take;
                }
            }
        }
        Assignor::RoundRobin => {
            let ids: Vec<&String> = members.keys().collect();
            let mut turn = 0usize;
            for (topic, count) in partitions {
                for p in 0..*count {
                    // The next member in turn that subscribes to the topic.
                    for _ in 0..ids.len() {
                        let member = ids[turn % ids.len()];
                        turn += 1;
                        if members[member].contains(topic) {
                            out.entry(member.clone())
                                .or_default()
                                .entry(topic.clone())
                                .or_default()
                                .push(p);
                            break;
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn range_gives_consecutive_partitions_with_the_extra_ones_first() {
        let m = members(&[("a", &["t", "u"]), ("b", &["t", "u"])]);
        let a = assign(Assignor::Range, &m, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(a["a"]["t"], vec![0, 1]);
        assert_eq!(a["b"]["t"], vec![2]);
        assert_eq!(a["a"]["u"], vec![0]);
        assert_eq!(a["b"]["u"], vec![1]);
    }

    #[test]
    fn roundrobin_deals_partitions_in_turn_to_subscribers_only() {
        let m = members(&[("a", &["t"]), ("b", &["t", "u"])]);
        let a = assign(Assignor::RoundRobin, &m, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(a["a"]["t"], vec![0, 2]);
        assert_eq!(a["b"]["t"], vec![1]);
        assert_eq!(a["b"]["u"], vec![0, 1]);
        assert!(!a["a"].contains_key("u"));
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle_and_every_partition_owned_once() {
        let m = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        for assignor in [Assignor::Range, Assignor::RoundRobin] {
            let a = assign(assignor, &m, &counts(&[("t", 2)]));
            let mut owned: Vec<i32> = a
                .values()
                .flat_map(|t| t.values().flatten())
                .copied()
                .collect();
            owned.sort_unstable();
            assert_eq!(owned, vec![0, 1], "{assignor:?}");
            assert_eq!(a.len(), 3);
        }
    }
}
