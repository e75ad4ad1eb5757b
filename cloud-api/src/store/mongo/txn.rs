//! Multi-document transactions with the retry rules MongoDB prescribes.
//!
//! A write that must be atomic with its audit records (or with another document) runs inside
//! [`transaction!`]: start, run the body, commit. A body error labelled
//! `TransientTransactionError` (a write conflict with a concurrent transaction, a failover)
//! reruns the whole body after a short random pause; a commit labelled
//! `UnknownTransactionCommitResult` retries the commit. Logical failures (`Conflict`,
//! `Duplicate`, `NotFound`) abort and are returned as they are. Retries stop after
//! [`DEADLINE`]; concurrent writers to the audit chain therefore serialize on its head
//! document instead of forking it.

use std::time::{Duration, Instant};

use mongodb::error::{Error, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::ClientSession;
use rand::Rng;

use super::codec::{backend, is_duplicate};
use crate::store::StoreError;

/// How long a transaction keeps retrying write conflicts before giving up.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// MongoDB's `WriteConflict`, labelled transient by real servers; treated as transient even
/// when a stand-in forgets the label.
const WRITE_CONFLICT: i32 = 112;

/// Why a transaction body stopped.
#[derive(Debug)]
pub(crate) enum Abort {
    /// A logical outcome to return to the caller (nothing was written).
    Store(StoreError),
    /// A driver or server error; retried when transient.
    Mongo(Error),
    /// A concurrent writer moved something this transaction relies on (the audit chain
    /// head): run it again from the start.
    Retry,
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Abort::Mongo(e)
    }
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Abort::Store(e)
    }
}

pub(crate) type TxResult<T> = Result<T, Abort>;

/// Maps a write error inside a transaction: a duplicate key becomes `Duplicate(what)`;
/// everything else stays a driver error (so transient ones are retried).
pub(crate) fn dup(what: impl FnOnce() -> String) -> impl FnOnce(Error) -> Abort {
    move |e| {
        if is_duplicate(&e) {
            Abort::Store(StoreError::Duplicate(what()))
        } else {
            Abort::Mongo(e)
        }
    }
}

/// Why a conditional write to record `id` matched nothing: it exists, so someone changed it
/// first (`Conflict`), or it does not (`NotFound` of `what`).
pub(crate) async fn conflict_or_missing(
    coll: &mongodb::Collection<mongodb::bson::Document>,
    s: &mut ClientSession,
    id: &str,
    what: impl FnOnce() -> String,
) -> Abort {
    match coll
        .find_one(mongodb::bson::doc! { "_id": id })
        .session(s)
        .await
    {
        Ok(Some(_)) => Abort::Store(StoreError::Conflict),
        Ok(None) => Abort::Store(StoreError::NotFound(what())),
        Err(e) => Abort::Mongo(e),
    }
}

pub(crate) fn is_transient(e: &Error) -> bool {
    e.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || super::codec::error_code(e) == Some(WRITE_CONFLICT)
}

/// What to do after an attempt.
pub(crate) enum Next<T> {
    Done(Result<T, StoreError>),
    Retry,
}

/// Ends one attempt: commits on success (retrying an unknown commit result), aborts on error,
/// and says whether to run the body again.
pub(crate) async fn settle<T>(
    session: &mut ClientSession,
    outcome: TxResult<T>,
    started: Instant,
    attempt: u32,
) -> Next<T> {
    let give_up = started.elapsed() > DEADLINE;
    match outcome {
        Ok(v) => loop {
            match session.commit_transaction().await {
                Ok(()) => return Next::Done(Ok(v)),
                Err(e)
                    if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                        && started.elapsed() <= DEADLINE =>
                {
                    pause(attempt).await;
                }
                Err(e) if is_transient(&e) && !give_up => {
                    pause(attempt).await;
                    return Next::Retry;
                }
                Err(e) => return Next::Done(Err(backend(e))),
            }
        },
        Err(abort) => {
            // The server may have aborted already; a failing abort changes nothing.
            let _ = session.abort_transaction().await;
            match abort {
                Abort::Store(e) => Next::Done(Err(e)),
                Abort::Retry if !give_up => {
                    pause(attempt).await;
                    Next::Retry
                }
                Abort::Retry => Next::Done(Err(StoreError::Backend(format!(
                    "gave up after {attempt} attempts of a transaction that kept losing the race for the audit chain head"
                )))),
                Abort::Mongo(e) if is_transient(&e) && !give_up => {
                    pause(attempt).await;
                    Next::Retry
                }
                Abort::Mongo(e) if is_transient(&e) => Next::Done(Err(StoreError::Backend(
                    format!("gave up after {attempt} attempts of a transaction that kept conflicting with concurrent writers: {e}"),
                ))),
                Abort::Mongo(e) => Next::Done(Err(backend(e))),
            }
        }
    }
}

/// A short random pause that grows with the attempt, so conflicting writers spread out.
async fn pause(attempt: u32) {
    let cap_ms = 2u64.saturating_pow(attempt.min(6)).min(50);
    let ms = rand::thread_rng().gen_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs `$body` (an expression using the session `$s`, evaluating to `TxResult<T>`) in a
/// transaction on `$store`, retrying as described in the module docs. Evaluates to
/// `StoreResult<T>`.
macro_rules! transaction {
    ($store:expr, |$s:ident| $body:expr) => {{
        let store: &$crate::store::mongo::MongoStore = $store;
        match store.start_session().await {
            Err(e) => Err(e),
            Ok(mut $s) => {
                let started = ::std::time::Instant::now();
                let mut attempt: u32 = 0;
                loop {
                    attempt += 1;
                    if let Err(e) = $s.start_transaction().await {
                        break Err($crate::store::mongo::codec::backend(e));
                    }
                    let outcome: $crate::store::mongo::txn::TxResult<_> = async { $body }.await;
                    match $crate::store::mongo::txn::settle(&mut $s, outcome, started, attempt)
                        .await
                    {
                        $crate::store::mongo::txn::Next::Done(r) => break r,
                        $crate::store::mongo::txn::Next::Retry => continue,
                    }
                }
            }
        }
    }};
}

pub(crate) use transaction;
