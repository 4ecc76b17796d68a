//! How an application records its consumer's group events in the history: one mapping
//! for the workload's group consumers and for the pipelines.

use crate::actor::Outbox;
use crate::client::consumer::{CommitId, GroupEvent};
use crate::history::{Entry, Op, Outcome};
use crate::kafka::protocol::{Millis, NodeId};

/// The member as the application knows it when an event is recorded.
pub(crate) struct Member {
    /// The application's process.
    pub process: NodeId,
    /// Its consumer group.
    pub group: String,
    /// Its member id ("" before its first join, unless the application remembers one).
    pub member: String,
}

/// What a recorded event asks of the application loop.
pub(crate) enum Signal {
    /// Nothing.
    None,
    /// The member joined a generation under this member id.
    Assigned(String),
    /// A commit the application may be waiting for completed (`ok`) or failed.
    CommitDone {
        /// The commit.
        id: CommitId,
        /// Whether the coordinator accepted it.
        ok: bool,
    },
    /// The member was fenced: the application stops.
    Fenced,
}

/// Records `event` in the history as `who`'s, and says what it means for the loop.
/// A commit is recorded as the operation the coordinator judged: from when its
/// `OffsetCommit` was sent (or the commit was invoked, if it failed) to now.
pub(crate) fn record(event: GroupEvent, who: &Member, now: Millis, out: &mut Outbox) -> Signal {
    let member_event = |event: String| Op::MemberEvent {
        group: who.group.clone(),
        member: who.member.clone(),
        event,
    };
    let commit = |invoke_ms, outcome, generation, offsets| Entry {
        index: 0,
        process: who.process,
        invoke_ms,
        complete_ms: Some(now),
        outcome,
        op: Op::Committed {
            group: who.group.clone(),
            member: who.member.clone(),
            generation,
            offsets,
        },
    };
    let (op, signal) = match event {
        GroupEvent::Assigned {
            generation,
            member_id,
            partitions,
        } => {
            let op = Op::Assigned {
                group: who.group.clone(),
                member: member_id.to_string(),
                generation,
                partitions,
            };
            (op, Signal::Assigned(member_id.to_string()))
        }
        GroupEvent::CommitCompleted {
            id,
            offsets,
            sent_ms,
            generation,
        } => {
            let offsets = offsets.into_iter().map(|c| (c.tp, c.offset)).collect();
            out.record(commit(sent_ms, Outcome::Ok, generation, offsets));
            return Signal::CommitDone { id, ok: true };
        }
        GroupEvent::CommitFailed {
            id,
            error,
            invoked_ms,
            generation,
        } => {
            let failed = Outcome::Fail { error };
            out.record(commit(invoked_ms, failed, generation, Vec::new()));
            return Signal::CommitDone { id, ok: false };
        }
        GroupEvent::Fenced { error } => (member_event(format!("fenced: {error}")), Signal::Fenced),
        GroupEvent::LeftGroup { reason, .. } => (
            member_event(format!("left the group: {reason}")),
            Signal::None,
        ),
        GroupEvent::CoordinatorDiscovered { broker } => {
            let event = format!("discovered group coordinator broker-{broker}");
            (member_event(event), Signal::None)
        }
        GroupEvent::Revoked { .. } => return Signal::None,
    };
    out.record(Entry::instant(who.process, now, op));
    signal
}
