//! The side that opens: hello, then turns until neither side has news.

use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::mpsc;

use crate::credential::now_unix;
use crate::identity::PublicKey;
use crate::negotiation::{MAX_TURNS, Negotiation, Party, Refusal};
use crate::net::{Command, HandshakeRequest, HandshakeResponse};

use super::service::{Reported, check_binding, no_shared_field};
use super::{Ending, MAX_QUEUED, Progress, Shared, UNREACHABLE};

impl Shared {
    /// The opener's side: hello, then turns until neither side has news. Reports what it
    /// concluded of the peer on `finished`.
    pub(super) async fn initiate(
        self: Arc<Self>,
        peer: PeerId,
        finished: mpsc::Sender<(PeerId, Ending)>,
    ) {
        // Held until this handshake ends; after MAX_QUEUED it goes ahead without one.
        let _permit = tokio::time::timeout(MAX_QUEUED, self.initiating.acquire()).await;
        let ending = match self.initiate_steps(peer).await {
            Ok(ending) => ending,
            // A connection that broke says nothing about the peer: no gate.
            Err(refusal) if refusal.code == UNREACHABLE => {
                tracing::info!(%peer, reason = %refusal.message, "handshake interrupted");
                Ending::Interrupted
            }
            Err(refusal) => {
                self.gate(peer, None, &refusal.code, &refusal.message).await;
                Ending::Gated
            }
        };
        let _ = finished.send((peer, ending)).await;
    }

    pub(super) async fn initiate_steps(self: &Arc<Self>, peer: PeerId) -> Result<Ending, Refusal> {
        let Some(did) = PublicKey::did_of_peer(&peer) else {
            return Err(Refusal::protocol(
                "the peer's key is not an organisation key",
            ));
        };
        let mut negotiation = Negotiation::new(&did, Self::fresh_nonce());
        let (asks, writes) = {
            let view = self.view();
            (negotiation.open(&view, now_unix())?, view.take_writes())
        };
        self.persist(peer, writes).await?;
        let hello = HandshakeRequest::Hello {
            did: self.did.clone(),
            nonce: negotiation.hello_nonce().to_owned(),
            asks,
        };
        let HandshakeResponse::Hello {
            did: their_did,
            nonce: their_nonce,
            proof,
            turn,
        } = self.request(peer, hello).await?
        else {
            return Err(Refusal::protocol("expected hello"));
        };
        check_binding(peer, &their_did)?;
        let mut incoming = turn;
        // The proof's nonce is written with the first turn's writes: one flush for both.
        let (proof_of_key, mut pending) = {
            let view = self.view();
            negotiation.take_proof(&view, &proof)?;
            (
                view.present(&their_did, &their_nonce, &[])?,
                view.take_writes(),
            )
        };
        let mut proof_of_key = Some(proof_of_key);
        let mut reported = Reported::default();
        for round in 0..=MAX_TURNS {
            let (taken, out, writes) = self
                .off_the_loop(negotiation, move |view, negotiation| {
                    let now = now_unix();
                    negotiation
                        .take(view, &incoming, now)
                        .and_then(|()| negotiation.next(view, now))
                })
                .await?;
            negotiation = taken;
            pending.append(writes);
            let mut out = match out {
                Ok(out) => out,
                Err(refusal) => {
                    // What was received and failed is logged too.
                    self.persist(peer, pending).await?;
                    return Err(refusal);
                }
            };
            // Both before the turn leaves: the log holds what it presents, and the record
            // is kept before our verdict reaches the peer (once it knows we verified it, it
            // may sync with us at once). The flush and the judging overlap.
            let written = self.persist(peer, std::mem::take(&mut pending));
            let recorded = async {
                if negotiation.any_engaged() {
                    self.progress(peer, &negotiation, &mut reported).await?;
                }
                Ok(())
            };
            tokio::try_join!(written, recorded)?;
            // The responder only ever answers: with nothing to say, the exchange is over.
            // The first turn goes anyway where a field is engaged, with our proof of key.
            let first_due = round == 0 && negotiation.any_engaged();
            if round == MAX_TURNS || !(out.has_news() || first_due) {
                break;
            }
            out.proof = proof_of_key.take();
            match self.request(peer, HandshakeRequest::Turn(out)).await? {
                HandshakeResponse::Turn(turn) => incoming = turn,
                _ => return Err(Refusal::protocol("expected a turn")),
            }
        }
        if !negotiation.any_engaged() {
            if let Some((barred, code, message)) = self
                .nothing_shared(peer, negotiation.peer(), no_shared_field(&negotiation))
                .await
            {
                self.gate(peer, barred.as_deref(), &code, &message).await;
            }
            return Ok(Ending::Gated);
        }
        match self.progress(peer, &negotiation, &mut reported).await? {
            Progress::Verified(record) => Ok(Ending::Verified(record)),
            Progress::NotYet(record) => {
                let (barred, code, message) = self.refused_record(peer, &record);
                self.gate(peer, barred.as_deref(), &code, &message).await;
                Ok(Ending::Gated)
            }
        }
    }

    pub(super) async fn request(
        &self,
        peer: PeerId,
        request: HandshakeRequest,
    ) -> Result<HandshakeResponse, Refusal> {
        let response = crate::net::call(&self.commands, |reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await
        .map_err(|error| Refusal {
            code: UNREACHABLE.into(),
            message: error.to_string(),
        })?;
        if let HandshakeResponse::Refused { code, message } = response {
            return Err(Refusal {
                code,
                message: format!("the peer refused: {message}"),
            });
        }
        Ok(response)
    }
}
