//! One partition's next registration, computed as Kafka's `PartitionChangeBuilder`
//! does: the target ISR, the eligible leader replicas (KIP-966), the election, and
//! whether anything changes at all. Pure: the controller supplies who is acceptable as
//! a leader and appends the result.

use crate::kafka::protocol::{BrokerId, PartitionRegistration};

/// Kafka's `PartitionChangeBuilder.Election`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Election {
    /// Keep a valid leader, else the first valid replica (in replica order).
    Online,
    /// As `Online`, then the first acceptable replica even out of the ISR
    /// (`unclean.leader.election.enable`).
    Unclean,
    /// The first replica if valid, else as `Online` without the unclean step.
    Preferred,
}

/// The inputs of one partition change.
#[derive(Debug)]
pub(super) struct PartitionChange<'a> {
    /// The registration now.
    pub old: &'a PartitionRegistration,
    /// The ISR asked for (before the election, which may replace it).
    pub target_isr: Vec<BrokerId>,
    /// The replica order asked for.
    pub target_replicas: Vec<BrokerId>,
    /// The election type.
    pub election: Election,
    /// `eligible.leader.replicas.version` ≥ 1.
    pub elr_enabled: bool,
    /// The topic's `min.insync.replicas`, capped at the replication factor
    /// (`ReplicationControlManager.getTopicEffectiveMinIsr`).
    pub min_isr: usize,
    /// A broker that registered after an unclean shutdown: it leaves the ELR too.
    pub unclean_shutdown: Option<BrokerId>,
}

/// A change to append: the new registration (epochs still the old ones; the controller
/// bumps them) and whether its election was unclean.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Change {
    /// The next registration.
    pub registration: PartitionRegistration,
    /// Whether the leader was elected from outside the ISR and ELR.
    pub unclean: bool,
}

impl PartitionChange<'_> {
    /// The change, or `None` when it would change nothing. `acceptable` says whether a
    /// replica may lead (unfenced and not being removed).
    pub fn build(self, acceptable: impl Fn(BrokerId) -> bool) -> Option<Change> {
        let old = self.old;
        let mut target_elr = self.target_elr(&self.target_isr);
        let mut target_isr = self.target_isr;

        // `tryElection`.
        let valid = |r: BrokerId, isr: &[BrokerId], elr: &[BrokerId]| {
            (isr.contains(&r) || (isr.is_empty() && elr.contains(&r))) && acceptable(r)
        };
        let first_valid = |from: &[BrokerId]| {
            from.iter()
                .copied()
                .find(|r| valid(*r, &target_isr, &target_elr))
        };
        let current_valid = old.leader.filter(|l| valid(*l, &target_isr, &target_elr));
        // `canElectLastKnownLeader`: with ISR and ELR empty, the one replica recorded as
        // the partition's last leader, as an unclean election (Kafka 4.x elects it
        // whether or not it is acceptable: its liveness test only logs).
        let last_known_leader = (self.elr_enabled
            && target_isr.is_empty()
            && target_elr.is_empty()
            && old.last_known_elr.len() == 1)
            .then(|| (old.last_known_elr[0], true));
        let elected: Option<(BrokerId, bool)> = match self.election {
            Election::Preferred => first_valid(&self.target_replicas[..1])
                .or(current_valid)
                .or_else(|| first_valid(&self.target_replicas[1..]))
                .map(|l| (l, false))
                .or(last_known_leader),
            Election::Online | Election::Unclean => current_valid
                .or_else(|| first_valid(&self.target_replicas))
                .map(|l| (l, false))
                .or(last_known_leader)
                .or_else(|| {
                    let unclean_allowed = self.election == Election::Unclean;
                    self.target_replicas
                        .iter()
                        .copied()
                        .find(|r| unclean_allowed && acceptable(*r))
                        .map(|l| (l, true))
                }),
        };
        let new_leader = elected.map(|(l, _)| l);
        let mut unclean = false;
        if let Some((leader, was_unclean)) = elected.filter(|_| new_leader != old.leader) {
            if target_elr.contains(&leader) {
                target_isr = vec![leader];
                target_elr.retain(|r| *r != leader);
            } else if was_unclean {
                // The ISR is forced to the new leader alone: this can lose data.
                unclean = true;
                target_isr = vec![leader];
            }
        }

        // `maybeUpdateRecordElr`: an unclean election or ELR off clears it.
        if unclean || !self.elr_enabled {
            target_elr.clear();
        }

        // The ISR may become empty only with ELR on; otherwise its last member stays.
        let isr = if unclean || (!target_isr.is_empty() || self.elr_enabled) {
            target_isr
        } else {
            old.isr.clone()
        };

        // `maybeUpdateLastKnownLeader`: the leader of a partition whose ISR just became
        // empty is remembered (once); a partition that has a leader forgets it.
        let old_leader: Vec<BrokerId> = old.leader.into_iter().collect();
        let last_known_elr = if !self.elr_enabled {
            old.last_known_elr.clone()
        } else if isr.is_empty() && isr != old.isr && old.last_known_elr != old_leader {
            old_leader
        } else if new_leader.is_some() {
            Vec::new()
        } else {
            old.last_known_elr.clone()
        };

        let registration = PartitionRegistration {
            tp: old.tp.clone(),
            replicas: self.target_replicas,
            isr,
            leader: new_leader,
            elr: target_elr,
            last_known_elr,
            leader_epoch: old.leader_epoch,
            partition_epoch: old.partition_epoch,
        };
        (registration != *old).then_some(Change {
            registration,
            unclean,
        })
    }

    /// `maybePopulateTargetElr`: the ELR before the election. With the ISR at or above
    /// min ISR it is empty; below it, every replica of the old ISR or ELR that is not in
    /// the target ISR, an uncleanly shut down one excepted (in replica order).
    fn target_elr(&self, target_isr: &[BrokerId]) -> Vec<BrokerId> {
        let old = self.old;
        if !self.elr_enabled {
            return old.elr.clone();
        }
        if target_isr.len() >= self.min_isr {
            return Vec::new();
        }
        old.replicas
            .iter()
            .copied()
            .filter(|r| {
                (old.isr.contains(r) || old.elr.contains(r))
                    && !target_isr.contains(r)
                    && Some(*r) != self.unclean_shutdown
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::protocol::TopicPartition;

    fn registration(
        isr: &[BrokerId],
        leader: Option<BrokerId>,
        elr: &[BrokerId],
    ) -> PartitionRegistration {
        PartitionRegistration {
            tp: TopicPartition::new("t", 0),
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader,
            elr: elr.to_vec(),
            last_known_elr: Vec::new(),
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    fn change(
        old: &PartitionRegistration,
        target_isr: &[BrokerId],
        election: Election,
        elr_enabled: bool,
        live: &[BrokerId],
    ) -> Option<Change> {
        PartitionChange {
            old,
            target_isr: target_isr.to_vec(),
            target_replicas: old.replicas.clone(),
            election,
            elr_enabled,
            min_isr: 2,
            unclean_shutdown: None,
        }
        .build(|r| live.contains(&r))
    }

    #[test]
    fn an_unchanged_partition_is_no_change() {
        let old = registration(&[1, 2, 3], Some(1), &[]);
        assert_eq!(
            change(&old, &[1, 2, 3], Election::Online, true, &[1, 2, 3]),
            None
        );
        assert_eq!(
            change(&old, &[1, 2, 3], Election::Preferred, false, &[1, 2, 3]),
            None
        );
    }

    #[test]
    fn an_unclean_election_clears_the_elr() {
        // ISR [1] with ELR [2]; both 1 and 2 gone, 3 live and unclean allowed.
        let old = registration(&[1], Some(1), &[2]);
        let c = change(&old, &[], Election::Unclean, true, &[3]).expect("a change");
        assert!(c.unclean);
        assert_eq!(c.registration.leader, Some(3));
        assert_eq!(c.registration.isr, vec![3]);
        assert!(c.registration.elr.is_empty());
    }

    #[test]
    fn the_preferred_replica_leads_when_valid_else_the_current_leader_stays() {
        let old = registration(&[1, 2, 3], Some(2), &[]);
        let c = change(&old, &[1, 2, 3], Election::Preferred, true, &[1, 2, 3]).expect("a change");
        assert_eq!(c.registration.leader, Some(1));
        assert!(!c.unclean);
        assert_eq!(
            change(&old, &[1, 2, 3], Election::Preferred, true, &[2, 3]),
            None
        );
    }

    #[test]
    fn without_elr_the_last_isr_member_keeps_its_seat() {
        let old = registration(&[1], Some(1), &[]);
        let c = change(&old, &[], Election::Online, false, &[2, 3]).expect("a change");
        assert_eq!(c.registration.leader, None);
        assert_eq!(c.registration.isr, vec![1]);
        assert!(c.registration.elr.is_empty() && c.registration.last_known_elr.is_empty());
    }
}
