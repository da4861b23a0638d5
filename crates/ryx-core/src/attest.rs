//! Attestations that let a job's result outlive its creator without
//! trusting whichever node took over.
//!
//! The client trusts the node it submitted to (the job's *creator*, whose
//! id leads the job id). If the creator dies, an heir becomes home, and an
//! heir may be Byzantine. What it can then claim is bounded by three kinds
//! of signed statement:
//!
//! - [`Vote`]: a worker's signature over (job, unit, token, digest). A unit
//!   decision carries a quorum of them (its certificate), so an heir that
//!   did not see the votes itself can check the decision.
//! - [`Appointment`]: the creator's signature over the heirs it chose.
//! - [`Confirmation`]: an appointed heir's signature over a merged result
//!   (hash, digest) that it merged itself from checked decisions and found
//!   equal.
//!
//! A `done` summary written by anyone but the creator is believed only with
//! the creator's appointment and a confirmation by an appointed heir other
//! than its writer ([`check_result`]): one Byzantine heir cannot make a
//! wrong result stand; two appointed to the same job could.

use crate::id::NodeId;
use crate::identity::{domain, Identity, Proof, SigError};
use crate::wire::PeerInfo;
use serde::{Deserialize, Serialize};

/// Most confirmations a summary carries.
pub const MAX_CONFIRMATIONS: usize = 16;
// Appointments and votes travel in job records and decisions: their
// bounds are the wire's.
pub use crate::wire::limits::{MAX_APPOINTED, MAX_VOTES};

/// A worker's signed vote for a unit's result.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Vote {
    /// The worker.
    pub worker: NodeId,
    /// Its signature (see [`vote_proof`]).
    pub proof: Proof,
}

fn vote_bytes(cluster: &str, job: &str, unit: u32, token: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&(cluster, job, unit, token, digest)).unwrap_or_default()
}

/// `identity`'s signature, as a worker, over the result `digest` of `unit`
/// computed for the token named `token` (see `jobs::token_digest`).
pub fn vote_proof(
    identity: &Identity,
    cluster: &str,
    wall_ms: u64,
    job: &str,
    unit: u32,
    token: &str,
    digest: &str,
) -> Proof {
    identity.prove(domain::VOTE, wall_ms, &[&vote_bytes(cluster, job, unit, token, digest)])
}

/// Checks that `worker` signed `digest` as the result of `unit`'s token.
pub fn check_vote(
    proof: &Proof,
    worker: NodeId,
    cluster: &str,
    job: &str,
    unit: u32,
    token: &str,
    digest: &str,
) -> Result<(), SigError> {
    proof.verify(worker, domain::VOTE, &[&vote_bytes(cluster, job, unit, token, digest)])
}

/// Whether `votes` hold `quorum` valid votes of distinct workers for
/// `digest` as the result of `unit`'s token.
pub fn check_certificate(
    votes: &[Vote],
    quorum: usize,
    cluster: &str,
    job: &str,
    unit: u32,
    token: &str,
    digest: &str,
) -> bool {
    if votes.len() > MAX_VOTES {
        return false;
    }
    let mut good: Vec<NodeId> = Vec::with_capacity(votes.len());
    for v in votes {
        if !good.contains(&v.worker) && check_vote(&v.proof, v.worker, cluster, job, unit, token, digest).is_ok() {
            good.push(v.worker);
        }
    }
    good.len() >= quorum.max(1)
}

/// The creator's signed list of the heirs it appointed for a job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Appointment {
    /// Heirs, in rank order, with the addresses the creator knew them by
    /// (so that a later home can reach them; the address is a hint, the
    /// id is what their confirmations are checked against).
    pub heirs: Vec<PeerInfo>,
    /// The creator's signature over the job and the heirs.
    pub proof: Proof,
}

fn appointment_bytes(cluster: &str, job: &str, heirs: &[PeerInfo]) -> Vec<u8> {
    serde_json::to_vec(&(cluster, job, heirs)).unwrap_or_default()
}

impl Appointment {
    /// The creator (`identity`) appoints `heirs` for `job`.
    pub fn new(identity: &Identity, cluster: &str, wall_ms: u64, job: &str, heirs: Vec<PeerInfo>) -> Appointment {
        let proof = identity.prove(domain::APPOINT, wall_ms, &[&appointment_bytes(cluster, job, &heirs)]);
        Appointment { heirs, proof }
    }

    /// Whether `node` is one of the appointed heirs.
    pub fn names(&self, node: NodeId) -> bool {
        self.heirs.iter().any(|p| p.id == node)
    }

    /// Checks that the job's creator signed this appointment.
    pub fn verify(&self, cluster: &str, job: &str) -> Result<(), SigError> {
        let creator = crate::jobs::job_creator(job).ok_or(SigError::WrongKey)?;
        if self.heirs.len() > MAX_APPOINTED {
            return Err(SigError::Bad);
        }
        self.proof.verify(creator, domain::APPOINT, &[&appointment_bytes(cluster, job, &self.heirs)])
    }
}

/// An heir's signed statement that it merged the job's decided partials
/// itself and got this result.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    /// The confirming heir.
    pub by: NodeId,
    /// Its signature over the job and the result's hash and digest.
    pub proof: Proof,
}

fn confirmation_bytes(cluster: &str, job: &str, hash: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&(cluster, job, hash, digest)).unwrap_or_default()
}

impl Confirmation {
    /// `identity` confirms `job`'s result (`hash`, `digest`).
    pub fn new(identity: &Identity, cluster: &str, wall_ms: u64, job: &str, hash: &str, digest: &str) -> Confirmation {
        let proof = identity.prove(domain::CONFIRM, wall_ms, &[&confirmation_bytes(cluster, job, hash, digest)]);
        Confirmation { by: identity.id(), proof }
    }

    /// Checks the signature of `self.by` over this result.
    pub fn verify(&self, cluster: &str, job: &str, hash: &str, digest: &str) -> Result<(), SigError> {
        self.proof.verify(self.by, domain::CONFIRM, &[&confirmation_bytes(cluster, job, hash, digest)])
    }
}

/// Whether a result claimed by `writer` for `job` stands: the creator's
/// word does; anyone else's needs the creator's appointment and a
/// confirmation by an appointed heir other than `writer` (or to be the
/// creator's only appointed heir).
pub fn check_result(
    cluster: &str,
    job: &str,
    writer: NodeId,
    hash: &str,
    digest: &str,
    appointment: Option<&Appointment>,
    confirmations: &[Confirmation],
) -> Result<(), &'static str> {
    if crate::jobs::job_creator(job) == Some(writer) {
        return Ok(());
    }
    let Some(a) = appointment else { return Err("unconfirmed_result") };
    if a.verify(cluster, job).is_err() || confirmations.len() > MAX_CONFIRMATIONS {
        return Err("unconfirmed_result");
    }
    if a.heirs.len() == 1 && a.names(writer) {
        // The creator had one node to appoint (a network of two): its
        // trust passes to that heir whole, there being no one else.
        return Ok(());
    }
    let confirmed =
        confirmations.iter().any(|c| c.by != writer && a.names(c.by) && c.verify(cluster, job, hash, digest).is_ok());
    if confirmed {
        Ok(())
    } else {
        Err("unconfirmed_result")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer(i: &Identity) -> PeerInfo {
        PeerInfo { id: i.id(), addr: "127.0.0.1:1".parse().unwrap() }
    }

    fn job_of(creator: &Identity) -> String {
        format!("{}{:016x}", creator.id(), 7)
    }

    #[test]
    fn a_vote_binds_worker_unit_token_and_digest() {
        let w = Identity::from_u64(1);
        let p = vote_proof(&w, "c", 5, "job", 3, "tok", "dig");
        assert!(check_vote(&p, w.id(), "c", "job", 3, "tok", "dig").is_ok());
        assert!(check_vote(&p, w.id(), "c", "job", 4, "tok", "dig").is_err());
        assert!(check_vote(&p, w.id(), "c", "job", 3, "other", "dig").is_err());
        assert!(check_vote(&p, w.id(), "c", "job", 3, "tok", "lie").is_err());
        assert!(check_vote(&p, w.id(), "d", "job", 3, "tok", "dig").is_err());
        assert_eq!(check_vote(&p, Identity::from_u64(2).id(), "c", "job", 3, "tok", "dig"), Err(SigError::WrongKey));
    }

    #[test]
    fn a_certificate_needs_a_quorum_of_distinct_workers() {
        let a = Identity::from_u64(1);
        let b = Identity::from_u64(2);
        let va = Vote { worker: a.id(), proof: vote_proof(&a, "c", 0, "j", 0, "t", "d") };
        let vb = Vote { worker: b.id(), proof: vote_proof(&b, "c", 0, "j", 0, "t", "d") };
        assert!(check_certificate(&[va, vb], 2, "c", "j", 0, "t", "d"));
        assert!(!check_certificate(&[va, va], 2, "c", "j", 0, "t", "d"), "one worker counted twice");
        // A vote under another worker's id does not count.
        let forged = Vote { worker: b.id(), proof: va.proof };
        assert!(!check_certificate(&[va, forged], 2, "c", "j", 0, "t", "d"));
        assert!(!check_certificate(&[va, vb], 2, "c", "j", 0, "t", "other"));
        assert!(!check_certificate(&[va; MAX_VOTES + 1], 1, "c", "j", 0, "t", "d"), "too many votes");
    }

    #[test]
    fn only_the_creator_appoints() {
        let creator = Identity::from_u64(10);
        let job = job_of(&creator);
        let heirs = vec![peer(&Identity::from_u64(11)), peer(&Identity::from_u64(12))];
        let a = Appointment::new(&creator, "c", 0, &job, heirs.clone());
        assert!(a.verify("c", &job).is_ok());
        let other = Appointment::new(&Identity::from_u64(11), "c", 0, &job, heirs.clone());
        assert_eq!(other.verify("c", &job), Err(SigError::WrongKey));
        let mut edited = a.clone();
        edited.heirs.push(peer(&Identity::from_u64(13)));
        assert_eq!(edited.verify("c", &job), Err(SigError::Bad));
    }

    #[test]
    fn a_result_stands_on_the_creators_word_or_another_appointed_heirs() {
        let creator = Identity::from_u64(10);
        let job = job_of(&creator);
        let h1 = Identity::from_u64(11);
        let h2 = Identity::from_u64(12);
        let outsider = Identity::from_u64(13);
        let a = Appointment::new(&creator, "c", 0, &job, vec![peer(&h1), peer(&h2)]);
        let check = |writer: NodeId, confs: &[Confirmation], app: Option<&Appointment>| {
            check_result("c", &job, writer, "h", "d", app, confs)
        };
        assert!(check(creator.id(), &[], None).is_ok(), "the creator needs nobody");
        assert!(check(h1.id(), &[], Some(&a)).is_err(), "an heir alone");
        let by_self = Confirmation::new(&h1, "c", 0, &job, "h", "d");
        assert!(check(h1.id(), &[by_self], Some(&a)).is_err(), "an heir confirming itself");
        let by_outsider = Confirmation::new(&outsider, "c", 0, &job, "h", "d");
        assert!(check(h1.id(), &[by_outsider], Some(&a)).is_err(), "a confirmation by a non-heir");
        let sole = Appointment::new(&creator, "c", 0, &job, vec![peer(&h1)]);
        assert!(check(h1.id(), &[], Some(&sole)).is_ok(), "the creator's only heir");
        assert!(check(h2.id(), &[], Some(&sole)).is_err(), "not appointed at all");
        let by_h2 = Confirmation::new(&h2, "c", 0, &job, "h", "d");
        assert!(check(h1.id(), &[by_h2], Some(&a)).is_ok());
        assert!(check(h1.id(), &[by_h2], None).is_err(), "no appointment");
        let other_result = Confirmation::new(&h2, "c", 0, &job, "h", "other");
        assert!(check(h1.id(), &[other_result], Some(&a)).is_err(), "confirmed another result");
        let forged_app = Appointment::new(&h1, "c", 0, &job, vec![peer(&h1), peer(&outsider)]);
        assert!(check(h1.id(), &[by_outsider], Some(&forged_app)).is_err(), "appointed by the writer itself");
    }
}
