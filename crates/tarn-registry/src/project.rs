//! Projects: a study's dimensions and the mappings between them, pinned at versions.

use crate::error::{Listing, RegistryError, Result};
use crate::{Pinned, Registry, author, body, check_name, to_json};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tarn::registry_store::{
    ComponentKind, ComponentVersion, DependencyTarget, NewComponentVersion,
};

/// A project definition as written by a user (`tarn project apply project.toml`), or given
/// on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub dimensions: Vec<String>,
    #[serde(default)]
    pub mappings: Vec<String>,
}

impl ProjectDefinition {
    /// Reads a TOML project definition:
    ///
    /// ```toml
    /// name = "us_demand"
    /// description = "Hourly electricity demand by state and sector"
    /// dimensions = ["county", "state", "sector"]
    /// mappings = ["county_to_state"]
    /// ```
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RegistryError::Io(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            RegistryError::Invalid(format!(
                "{} is not a valid project definition: {e}",
                path.display()
            ))
        })
    }
}

/// A project version, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectBody {
    pub description: String,
    pub dimensions: Vec<Pinned>,
    pub mappings: Vec<Pinned>,
}

impl ProjectBody {
    pub fn dimension(&self, name: &str) -> Option<&Pinned> {
        self.dimensions.iter().find(|d| d.name == name)
    }
}

/// A project version.
#[derive(Debug, Clone)]
pub struct Project {
    pub version: ComponentVersion,
    pub body: ProjectBody,
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct ApplyOutcome {
    /// The new version; `None` when the project was already exactly this.
    pub version: Option<ComponentVersion>,
    pub created: bool,
}

impl Registry {
    pub async fn project(&self, name: &str, version: Option<u64>) -> Result<Project> {
        let v = self
            .version_of(ComponentKind::Project, name, version)
            .await?;
        let body = body(&v)?;
        Ok(Project { version: v, body })
    }

    /// Creates a project; it must not exist.
    pub async fn create_project(
        &self,
        def: &ProjectDefinition,
        message: Option<&str>,
    ) -> Result<ComponentVersion> {
        check_name("project", &def.name)?;
        if let Some(existing) = self
            .lake()
            .registry_store()
            .component(ComponentKind::Project, &def.name)
            .await?
        {
            return Err(RegistryError::Invalid(format!(
                "project {:?} already exists (version {}); change it with tarn project apply FILE",
                def.name, existing.head_version
            )));
        }
        let outcome = self.apply_project(def, message).await?;
        outcome.version.ok_or_else(|| {
            RegistryError::Invalid(format!("project {:?} was created meanwhile", def.name))
        })
    }

    /// Creates the project, or makes a new version of it when the definition (or the
    /// current version of a dimension or mapping it names) differs from its latest
    /// version. Everything is pinned at the current versions.
    pub async fn apply_project(
        &self,
        def: &ProjectDefinition,
        message: Option<&str>,
    ) -> Result<ApplyOutcome> {
        check_name("project", &def.name)?;
        let current = match self
            .lake()
            .registry_store()
            .component(ComponentKind::Project, &def.name)
            .await?
        {
            Some(_) => Some(self.project(&def.name, None).await?),
            None => None,
        };
        let body = self.pin(def).await?;
        if let Some(current) = &current
            && current.body == body
        {
            return Ok(ApplyOutcome {
                version: None,
                created: false,
            });
        }
        let mut dependencies: Vec<DependencyTarget> = body
            .dimensions
            .iter()
            .map(|d| DependencyTarget {
                kind: ComponentKind::Dimension.as_str().into(),
                name: d.name.clone(),
                version: d.version,
            })
            .collect();
        dependencies.extend(body.mappings.iter().map(|m| DependencyTarget {
            kind: ComponentKind::Mapping.as_str().into(),
            name: m.name.clone(),
            version: m.version,
        }));
        let message = match (message, &current) {
            (Some(m), _) if !m.trim().is_empty() => m.to_string(),
            (_, None) => format!(
                "{} dimension(s), {} mapping(s)",
                body.dimensions.len(),
                body.mappings.len()
            ),
            (_, Some(_)) => {
                return Err(RegistryError::Invalid(format!(
                    "changing project {:?} needs a message (--message) saying what changed",
                    def.name
                )));
            }
        };
        let version = self
            .lake()
            .registry_store()
            .put_component_version(NewComponentVersion {
                kind: ComponentKind::Project,
                name: def.name.clone(),
                base_version: current.as_ref().map(|c| c.version.version),
                author: author(),
                message,
                body_json: to_json(&body)?,
                records: Vec::new(),
                mapping_rows: Vec::new(),
                dependencies,
            })
            .await?;
        Ok(ApplyOutcome {
            version: Some(version),
            created: current.is_none(),
        })
    }

    /// The definition, checked, with every dimension and mapping pinned at its current
    /// version.
    async fn pin(&self, def: &ProjectDefinition) -> Result<ProjectBody> {
        let invalid =
            |what: String| RegistryError::Invalid(format!("project {:?}: {what}", def.name));
        let repeated = |names: &[String]| -> Vec<String> {
            let mut seen = BTreeSet::new();
            names
                .iter()
                .filter(|n| !seen.insert(n.as_str()))
                .cloned()
                .collect()
        };
        for (what, names) in [("dimension", &def.dimensions), ("mapping", &def.mappings)] {
            let twice = repeated(names);
            if !twice.is_empty() {
                return Err(invalid(format!(
                    "{what}(s) listed twice: {}",
                    Listing(&twice)
                )));
            }
        }
        if def.dimensions.is_empty() {
            return Err(invalid("a project needs at least one dimension".into()));
        }
        let mut dimensions = Vec::new();
        let mut missing = Vec::new();
        for name in &def.dimensions {
            match self
                .lake()
                .registry_store()
                .component(ComponentKind::Dimension, name)
                .await?
            {
                Some(c) => dimensions.push(Pinned {
                    name: name.clone(),
                    version: c.head_version,
                }),
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(RegistryError::NotFound(format!(
                "project {:?}: unknown dimension(s) {} (tarn dimension ls lists them)",
                def.name,
                Listing(&missing)
            )));
        }
        let pinned_dims: BTreeMap<&str, u64> = dimensions
            .iter()
            .map(|d| (d.name.as_str(), d.version))
            .collect();
        let mut mappings = Vec::new();
        let mut edges: Vec<(String, String, String)> = Vec::new();
        for name in &def.mappings {
            let m = match self.mapping(name, None).await {
                Ok(m) => m,
                Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                    return Err(RegistryError::NotFound(format!(
                        "project {:?}: unknown mapping {name:?} (tarn mapping ls lists them)",
                        def.name
                    )));
                }
                Err(e) => return Err(e),
            };
            for end in [&m.body.from, &m.body.to] {
                match pinned_dims.get(end.name.as_str()) {
                    None => {
                        return Err(invalid(format!(
                            "mapping {name:?} joins dimension {:?}, which the project does not list; add it to dimensions",
                            end.name
                        )));
                    }
                    Some(v) if *v != end.version => {
                        return Err(invalid(format!(
                            "mapping {name:?} was validated against {} v{}, but the project uses {} v{v}; update the mapping first (tarn mapping update {name} ...)",
                            end.name, end.version, end.name
                        )));
                    }
                    Some(_) => {}
                }
            }
            edges.push((
                m.body.from.name.clone(),
                m.body.to.name.clone(),
                name.clone(),
            ));
            mappings.push(Pinned {
                name: name.clone(),
                version: m.version.version,
            });
        }
        if let Some(cycle) = find_cycle(&edges) {
            return Err(invalid(format!(
                "its mappings form a cycle ({}); a project's mappings must lead from finer to coarser dimensions without coming back",
                cycle.join(" -> ")
            )));
        }
        Ok(ProjectBody {
            description: def.description.clone(),
            dimensions,
            mappings,
        })
    }
}

/// A cycle in the graph of `(from, to, mapping)` edges, as the dimensions along it.
pub(crate) fn find_cycle(edges: &[(String, String, String)]) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to, _) in edges {
        next.entry(from).or_default().push(to);
    }
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(node, 1);
        path.push(node);
        for &n in next.get(node).map(Vec::as_slice).unwrap_or_default() {
            match state.get(n).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| *p == n).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(n.to_string());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(n, next, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    let nodes: Vec<&str> = next.keys().copied().collect();
    for node in nodes {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(c) = visit(node, &next, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(from: &str, to: &str) -> (String, String, String) {
        (from.into(), to.into(), format!("{from}_to_{to}"))
    }

    #[test]
    fn cycles() {
        assert_eq!(find_cycle(&[]), None);
        assert_eq!(
            find_cycle(&[e("county", "state"), e("state", "region")]),
            None
        );
        assert_eq!(
            find_cycle(&[
                e("county", "state"),
                e("county", "region"),
                e("state", "region")
            ]),
            None,
            "a diamond is no cycle"
        );
        assert_eq!(
            find_cycle(&[e("county", "state"), e("state", "county")]),
            Some(vec!["county".into(), "state".into(), "county".into()])
        );
        assert_eq!(
            find_cycle(&[e("a", "b"), e("b", "c"), e("c", "a"), e("x", "a")]),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
    }
}
