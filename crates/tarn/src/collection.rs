//! Collections (SPEC §1): named sets of datasets whose names are made from typed keys. The
//! catalog keeps each collection's [`KeySchema`]; this module creates and lists them,
//! discovers the datasets of a collection (every dataset under its prefix whose name parses
//! as a key), filters them by key values, and refuses the first write of a dataset under a
//! collection's prefix whose name is not a key of it.
//!
//! Decisions (docs/guide.md, "Collections"):
//! - A collection may be created over a prefix that already holds datasets (adopting an
//!   existing tree). Nothing is refused or renamed: the returned listing says which names
//!   are keys and which are not, so the caller can report them.
//! - Names under the prefix that do not parse are never dropped silently: discovery returns
//!   them as [`UnmatchedDataset`]s with the reason.
//! - Collections do not nest: a collection inside another's prefix is refused by the catalog,
//!   so a dataset belongs to at most one collection.
//! - Only the write that creates a dataset is checked; appends to an existing dataset pay
//!   nothing. A dataset created under a prefix before its collection existed stays as it is.

use crate::error::{Error, Result};
use crate::lake::Lake;
use tarn_catalog::{CollectionRecord, DatasetSummary};
use tarn_core::{CoreError, DatasetName, KeySchema, KeyValue, TarnUri};

/// A dataset of a collection, with its key.
#[derive(Debug, Clone)]
pub struct CollectionDataset {
    pub summary: DatasetSummary,
    /// `(field, value)` in the schema's field order.
    pub key: Vec<(String, KeyValue)>,
}

/// A dataset under a collection's prefix whose name is not a key of the collection.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmatchedDataset {
    pub name: DatasetName,
    /// Why the name does not parse, e.g. `segment "temp" has 1 field separated by '-', ...`.
    pub reason: String,
}

/// A collection and the datasets found under its prefix.
#[derive(Debug, Clone)]
pub struct CollectionListing {
    pub collection: CollectionRecord,
    /// The datasets whose name is a key (and that pass the filter, when one was given).
    pub datasets: Vec<CollectionDataset>,
    /// Every dataset under the prefix whose name is not a key (never filtered).
    pub unmatched: Vec<UnmatchedDataset>,
}

impl Lake {
    /// Records a new collection. Fails if a collection of that name exists, or if it would
    /// lie inside another collection or contain one. Datasets already under its prefix are
    /// adopted: the listing returned says which of them are keys and which are not.
    pub async fn create_collection(&self, schema: KeySchema) -> Result<CollectionListing> {
        let record = self.catalog.collections.create_collection(&schema).await?;
        self.list_collection(record, Vec::new()).await
    }

    /// The collection named `name`.
    pub async fn collection(&self, name: &str) -> Result<CollectionRecord> {
        let dataset_name = DatasetName::new(name)?;
        self.catalog
            .collections
            .collection(&dataset_name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "collection {name:?} does not exist (`tarn collection ls` lists them)"
                ))
            })
    }

    /// Every collection, by name.
    pub async fn collections(&self) -> Result<Vec<CollectionRecord>> {
        Ok(self.catalog.collections.collections().await?)
    }

    /// The collection whose prefix holds `name`, if any (at most one: collections do not
    /// nest).
    pub async fn collection_of(&self, name: &DatasetName) -> Result<Option<CollectionRecord>> {
        let text = name.as_str();
        for (i, _) in text.match_indices('/') {
            let prefix = DatasetName::new(&text[..i])?;
            if let Some(found) = self.catalog.collections.collection(&prefix).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The datasets of collection `name` whose key has every `(field, value)` of `filter`
    /// (values are text, parsed in the field's type), and the names under its prefix that
    /// are not keys.
    pub async fn collection_datasets(
        &self,
        name: &str,
        filter: &[(&str, &str)],
    ) -> Result<CollectionListing> {
        let record = self.collection(name).await?;
        let schema = &record.schema;
        let filter = filter
            .iter()
            .map(|&(field, text)| match schema.parse_value(field, text) {
                Ok(v) => Ok((field.to_string(), v)),
                Err(CoreError::InvalidKey { reason, .. }) => Err(Error::InvalidInput(format!(
                    "invalid filter {field}={text} for collection {name:?} ({}): {reason}",
                    schema.pattern()
                ))),
                Err(e) => Err(e.into()),
            })
            .collect::<Result<Vec<_>>>()?;
        self.list_collection(record, filter).await
    }

    async fn list_collection(
        &self,
        collection: CollectionRecord,
        filter: Vec<(String, KeyValue)>,
    ) -> Result<CollectionListing> {
        let schema = &collection.schema;
        let mut datasets = Vec::new();
        let mut unmatched = Vec::new();
        for summary in self
            .catalog
            .reader
            .datasets(Some(schema.collection().to_string()))
            .await?
            .into_iter()
            // A dataset named exactly like the collection is beside it, not in it.
            .filter(|d| schema.holds(&d.name))
        {
            match schema.parse(&summary.name) {
                Ok(key) => {
                    let keep = filter
                        .iter()
                        .all(|(f, v)| key.iter().any(|(kf, kv)| kf == f && kv == v));
                    if keep {
                        datasets.push(CollectionDataset { summary, key });
                    }
                }
                Err(e) => unmatched.push(UnmatchedDataset {
                    name: summary.name,
                    reason: match e {
                        CoreError::KeyMismatch { reason, .. } => reason,
                        other => other.to_string(),
                    },
                }),
            }
        }
        Ok(CollectionListing {
            collection,
            datasets,
            unmatched,
        })
    }

    /// Refuses to create `uri`'s dataset when its name lies under a collection's prefix but
    /// is not a key of it. Called only by the write that creates a dataset.
    pub(crate) async fn check_new_dataset_name(&self, uri: &TarnUri) -> Result<()> {
        if let Some(collection) = self.collection_of(&uri.dataset).await? {
            collection.schema.parse(&uri.dataset).map_err(|e| {
                Error::InvalidInput(format!("{uri}: refusing to create the dataset: {e}"))
            })?;
        }
        Ok(())
    }
}
