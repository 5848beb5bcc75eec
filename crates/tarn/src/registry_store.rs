//! The registry's storage in the lake's catalog (docs/design/0005): versioned components
//! (dimensions, mappings, projects, registrations), their records, mapping rows and
//! dependencies. The `tarn-registry` crate builds the registry's rules on it; this module
//! only stores and reads, with the guarantees written on each method.

use crate::error::Result;
use crate::lake::Lake;
use std::sync::Arc;

pub use tarn_catalog::{
    ComponentKind, ComponentRecord, ComponentVersion, DependencyTarget, Dependent,
    DimensionRecordRow, MappingRow, NewComponentVersion,
};

/// The registry's part of a lake's catalog. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegistryStore {
    inner: Arc<dyn tarn_catalog::RegistryStore>,
}

impl Lake {
    pub fn registry_store(&self) -> RegistryStore {
        RegistryStore {
            inner: self.catalog.registry.clone(),
        }
    }
}

impl RegistryStore {
    /// Writes a component version: the first (version 1) when `v.base_version` is `None`,
    /// else `base_version + 1` if the head is still `base_version`. One transaction with its
    /// own lake commit; exclusive; on any error nothing is written. See
    /// `tarn_catalog::RegistryStore::put_component_version` for every refusal.
    pub async fn put_component_version(&self, v: NewComponentVersion) -> Result<ComponentVersion> {
        Ok(self.inner.put_component_version(v).await?)
    }

    pub async fn component(
        &self,
        kind: ComponentKind,
        name: &str,
    ) -> Result<Option<ComponentRecord>> {
        Ok(self.inner.component(kind, name).await?)
    }

    /// Every component of `kind` (of every kind when `None`), by kind then name.
    pub async fn components(&self, kind: Option<ComponentKind>) -> Result<Vec<ComponentRecord>> {
        Ok(self.inner.components(kind).await?)
    }

    /// Version `version` of a component (its head when `None`).
    pub async fn component_version(
        &self,
        kind: ComponentKind,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<ComponentVersion>> {
        Ok(self.inner.component_version(kind, name, version).await?)
    }

    /// Every version of a component, newest first.
    pub async fn component_history(
        &self,
        kind: ComponentKind,
        name: &str,
    ) -> Result<Vec<ComponentVersion>> {
        Ok(self.inner.component_history(kind, name).await?)
    }

    /// The records of a dimension version, by id.
    pub async fn dimension_records(
        &self,
        component_id: i64,
        version: u64,
    ) -> Result<Vec<DimensionRecordRow>> {
        Ok(self.inner.dimension_records(component_id, version).await?)
    }

    /// The rows of a mapping version, by `(from_id, to_id)`.
    pub async fn mapping_rows(&self, component_id: i64, version: u64) -> Result<Vec<MappingRow>> {
        Ok(self.inner.mapping_rows(component_id, version).await?)
    }

    /// What a component version depends on.
    pub async fn dependencies(
        &self,
        component_id: i64,
        version: u64,
    ) -> Result<Vec<DependencyTarget>> {
        Ok(self.inner.dependencies(component_id, version).await?)
    }

    /// The component versions that depend on a target (at `target_version`, or any).
    pub async fn dependents(
        &self,
        target_kind: &str,
        target_name: &str,
        target_version: Option<u64>,
    ) -> Result<Vec<Dependent>> {
        Ok(self
            .inner
            .dependents(target_kind, target_name, target_version)
            .await?)
    }
}
