//! The deploy check: which stored executions would park on this build
//! ([`EngineBuilder::check_layouts`](super::EngineBuilder::check_layouts)).

use serde::Serialize;

use super::layouts;
use super::registry::Registry;
use crate::error::Error;
use crate::record::{ListFilter, Status};
use crate::store::Store;

/// An unfinished execution that no registered version can resume: it would park (or stay
/// parked) on an engine with these registrations.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Stranded {
    /// The execution id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Its status now.
    pub status: Status,
    /// What differs between its layout and the registered versions'.
    pub reason: String,
}

/// How many executions one store read takes.
const PAGE: usize = 1024;

pub(super) async fn check(store: &dyn Store, registry: &Registry) -> Result<Vec<Stranded>, Error> {
    let mut stranded = Vec::new();
    for status in [Status::Running, Status::Suspended, Status::Parked] {
        let mut filter = ListFilter::default().status(status).limit(PAGE);
        loop {
            let page = store.list(&filter).await?;
            for record in &page {
                let layout = layouts::stored_layout(record);
                if registry
                    .resumer(&record.workflow, record.fingerprint, layout)
                    .is_none()
                {
                    stranded.push(Stranded {
                        id: record.id.clone(),
                        workflow: record.workflow.clone(),
                        status: record.status,
                        reason: layouts::mismatch(store, registry, record).await?,
                    });
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => filter = filter.after(last.id.clone()),
                _ => break,
            }
        }
    }
    Ok(stranded)
}
