//! Collection keys (SPEC §1): a collection is a set of datasets whose names are made from
//! typed key values. A [`KeySchema`] says how: the collection's name (a path prefix), then
//! one name segment per level, each the level's field values joined by the separator.
//! `weather` with fields `quantity:str,city:str` and a sub-level `frequency:str` names its
//! datasets `weather/<quantity>-<city>/<frequency>`, e.g. `weather/temp-berlin/1D`.
//!
//! Conversion is exact both ways: a key formats to one name and that name parses back to
//! the same key. That is why a `str` value may not contain the separator or `/`, and an int
//! is accepted only in the form tarn writes it (`7`, never `007` or `+7`).

use crate::error::{CoreError, Result};
use crate::name::DatasetName;
use std::fmt;

/// The characters that may separate fields: allowed in names, so then not inside values.
pub const SEPARATORS: [char; 4] = ['-', '_', '.', '='];
pub const DEFAULT_SEPARATOR: char = '-';

/// The type of a key field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// A 64-bit signed integer, written in decimal.
    Int,
    /// Text of letters, digits and `_ . = -`, without the separator.
    Str,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Int => "int",
            KeyKind::Str => "str",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "int" => Ok(Self::Int),
            "str" => Ok(Self::Str),
            other => Err(format!("unknown type {other:?}: use int or str")),
        }
    }
}

/// One typed field of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct KeyField {
    pub name: String,
    pub kind: KeyKind,
}

fn field_name_error(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let good = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    (!good).then(|| {
        format!(
            "field name {name:?} is not valid: use a letter or '_' followed by letters, digits and '_'"
        )
    })
}

impl KeyField {
    pub fn new(name: impl Into<String>, kind: KeyKind) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }

    pub fn int(name: impl Into<String>) -> Self {
        Self::new(name, KeyKind::Int)
    }

    pub fn str(name: impl Into<String>) -> Self {
        Self::new(name, KeyKind::Str)
    }

    /// Parses `name:int` or `name:str` (the type is required).
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: String| CoreError::InvalidFieldSpec {
            spec: spec.to_string(),
            reason,
        };
        let (name, kind) = spec.trim().split_once(':').ok_or_else(|| {
            bad(format!(
                "no type: write {0}:str or {0}:int",
                spec.trim().trim_end_matches(':')
            ))
        })?;
        let (name, kind) = (name.trim(), kind.trim());
        if let Some(reason) = field_name_error(name) {
            return Err(bad(reason));
        }
        Ok(Self::new(name, kind.parse().map_err(bad)?))
    }

    /// Parses a comma-separated list such as `quantity:str,city:str`.
    pub fn parse_list(spec: &str) -> Result<Vec<Self>> {
        if spec.trim().is_empty() {
            return Err(CoreError::InvalidFieldSpec {
                spec: spec.to_string(),
                reason: "no fields: list them as name:type,name:type (types: int, str)".into(),
            });
        }
        spec.split(',')
            .map(|one| {
                if one.trim().is_empty() {
                    Err(CoreError::InvalidFieldSpec {
                        spec: spec.to_string(),
                        reason: "it has an empty field (a leading, trailing or doubled ',')".into(),
                    })
                } else {
                    Self::parse(one)
                }
            })
            .collect()
    }
}

impl fmt::Display for KeyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.kind)
    }
}

/// The value of one key field. In JSON an int is a number and a str a string.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(untagged)]
pub enum KeyValue {
    Int(i64),
    Str(String),
}

impl KeyValue {
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyValue::Int(_) => KeyKind::Int,
            KeyValue::Str(_) => KeyKind::Str,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            KeyValue::Int(v) => Some(*v),
            KeyValue::Str(_) => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            KeyValue::Str(s) => Some(s),
            KeyValue::Int(_) => None,
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::Str(s) => f.write_str(s),
        }
    }
}

impl From<i64> for KeyValue {
    fn from(v: i64) -> Self {
        KeyValue::Int(v)
    }
}

impl From<&str> for KeyValue {
    fn from(v: &str) -> Self {
        KeyValue::Str(v.to_string())
    }
}

impl From<String> for KeyValue {
    fn from(v: String) -> Self {
        KeyValue::Str(v)
    }
}

/// How the datasets of one collection are named: validated on construction and on
/// deserialisation, so every `KeySchema` in hand is a valid one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "KeySchemaRepr", into = "KeySchemaRepr")]
pub struct KeySchema {
    collection: DatasetName,
    separator: char,
    levels: Vec<Vec<KeyField>>,
}

/// The stored form of a [`KeySchema`] (JSON in the catalog).
#[derive(serde::Serialize, serde::Deserialize)]
struct KeySchemaRepr {
    collection: String,
    separator: char,
    levels: Vec<Vec<KeyField>>,
}

impl TryFrom<KeySchemaRepr> for KeySchema {
    type Error = CoreError;
    fn try_from(r: KeySchemaRepr) -> Result<Self> {
        Self::new(r.collection, r.separator, r.levels)
    }
}

impl From<KeySchema> for KeySchemaRepr {
    fn from(s: KeySchema) -> Self {
        Self {
            collection: s.collection.into(),
            separator: s.separator,
            levels: s.levels,
        }
    }
}

fn allowed_in_value(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=' | '-')
}

impl KeySchema {
    /// A schema for `collection` (a dataset-name-like path) whose level 0 is the top level
    /// under the collection and each further level one more directory.
    pub fn new(
        collection: impl Into<String>,
        separator: char,
        levels: Vec<Vec<KeyField>>,
    ) -> Result<Self> {
        let collection = collection.into();
        let bad = |reason: String| CoreError::InvalidKeySchema {
            collection: collection.clone(),
            reason,
        };
        let name = DatasetName::new(collection.clone()).map_err(|e| match e {
            CoreError::InvalidName { reason, .. } => bad(format!(
                "the collection name is not a valid dataset path: {reason}"
            )),
            other => bad(other.to_string()),
        })?;
        if !SEPARATORS.contains(&separator) {
            return Err(bad(format!(
                "separator {separator:?} is not one of '-', '_', '.', '=' (the separator must be a \
                 character allowed in names; it is then not allowed inside values)"
            )));
        }
        if levels.iter().all(Vec::is_empty) {
            return Err(bad("a key schema needs at least one field".into()));
        }
        if let Some(i) = levels.iter().position(Vec::is_empty) {
            return Err(bad(format!(
                "{} has no fields (every level needs at least one)",
                level_label(i)
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for field in levels.iter().flatten() {
            if let Some(reason) = field_name_error(&field.name) {
                return Err(bad(reason));
            }
            if !seen.insert(field.name.as_str()) {
                return Err(bad(format!(
                    "field name {:?} is used twice (field names are unique across all levels)",
                    field.name
                )));
            }
        }
        Ok(Self {
            collection: name,
            separator,
            levels,
        })
    }

    /// The schema of the CLI's `--fields a:str,b:int [--sublevel c:str]... [--separator C]`.
    pub fn parse_spec<S: AsRef<str>>(
        collection: &str,
        fields: &str,
        sublevels: &[S],
        separator: Option<char>,
    ) -> Result<Self> {
        let mut levels = vec![KeyField::parse_list(fields)?];
        for sub in sublevels {
            levels.push(KeyField::parse_list(sub.as_ref())?);
        }
        Self::new(collection, separator.unwrap_or(DEFAULT_SEPARATOR), levels)
    }

    pub fn collection(&self) -> &DatasetName {
        &self.collection
    }

    pub fn separator(&self) -> char {
        self.separator
    }

    /// Level 0 is the top level (the segment right under the collection).
    pub fn levels(&self) -> &[Vec<KeyField>] {
        &self.levels
    }

    /// Every field, level by level: the order of [`KeySchema::name_from_values`].
    pub fn fields(&self) -> impl Iterator<Item = &KeyField> {
        self.levels.iter().flatten()
    }

    pub fn field(&self, name: &str) -> Option<&KeyField> {
        self.fields().find(|f| f.name == name)
    }

    /// The field and whether its value begins a name segment.
    fn position(&self, name: &str) -> Option<(&KeyField, bool)> {
        self.levels.iter().find_map(|level| {
            level
                .iter()
                .position(|f| f.name == name)
                .map(|i| (&level[i], i == 0))
        })
    }

    /// The names this schema gives, e.g. `weather/<quantity>-<city>/<frequency>`.
    pub fn pattern(&self) -> String {
        format!("{}/{}", self.collection, self.levels_pattern())
    }

    fn levels_pattern(&self) -> String {
        self.levels
            .iter()
            .map(|l| self.level_pattern(l))
            .collect::<Vec<_>>()
            .join("/")
    }

    fn level_pattern(&self, level: &[KeyField]) -> String {
        level
            .iter()
            .map(|f| format!("<{}>", f.name))
            .collect::<Vec<_>>()
            .join(&self.separator.to_string())
    }

    fn field_list(&self) -> String {
        self.fields()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// True when `name` lies strictly under the collection (whether or not it parses).
    pub fn holds(&self, name: &DatasetName) -> bool {
        name != &self.collection && name.is_under(self.collection.as_str())
    }

    fn invalid(&self, reason: String) -> CoreError {
        CoreError::InvalidKey {
            collection: self.collection.to_string(),
            pattern: self.pattern(),
            reason,
        }
    }

    fn unknown_field(&self, name: &str) -> String {
        format!(
            "unknown field {name:?} (the fields are {})",
            self.field_list()
        )
    }

    /// The characters a str value may use besides letters and digits.
    fn value_punctuation(&self) -> String {
        SEPARATORS
            .iter()
            .filter(|c| **c != self.separator)
            .map(char::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn str_error(&self, field: &str, value: &str, starts_segment: bool) -> Option<String> {
        let sep = self.separator;
        if value.is_empty() {
            return Some(format!(
                "value {value:?} of field {field:?} is empty (a str value needs at least one character)"
            ));
        }
        if value.contains('/') {
            return Some(format!(
                "value {value:?} of field {field:?} contains '/' (str values may not contain the separator {sep:?} or '/')"
            ));
        }
        if value.contains(sep) {
            return Some(format!(
                "value {value:?} of field {field:?} contains the separator {sep:?} (str values may not contain the separator or '/')"
            ));
        }
        if let Some(c) = value.chars().find(|c| !allowed_in_value(*c)) {
            return Some(format!(
                "value {value:?} of field {field:?} has character {c:?}, which is not allowed (use letters, digits and {})",
                self.value_punctuation()
            ));
        }
        if starts_segment && value.starts_with('.') {
            return Some(format!(
                "value {value:?} of field {field:?} starts with '.', which may not begin a name segment"
            ));
        }
        None
    }

    fn int_text(&self, field: &str, value: i64) -> std::result::Result<String, String> {
        let text = value.to_string();
        if text.contains(self.separator) {
            return Err(format!(
                "value {value} of int field {field:?} contains the separator {:?}, so its name would not parse back; \
                 negative numbers need a separator other than '-' (one of _ . =)",
                self.separator
            ));
        }
        Ok(text)
    }

    fn parse_int(field: &str, text: &str) -> std::result::Result<i64, String> {
        use std::num::IntErrorKind;
        match text.parse::<i64>() {
            Ok(v) if v.to_string() == text => Ok(v),
            Ok(v) => Err(format!(
                "value {text:?} of int field {field:?} is not written as tarn writes the integer {v} (no leading zeros, no '+')"
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
                ) =>
            {
                Err(format!(
                    "value {text:?} of int field {field:?} is out of range (ints are 64-bit)"
                ))
            }
            Err(_) => Err(format!(
                "value {text:?} of int field {field:?} is not an integer"
            )),
        }
    }

    /// The name of the key given as `(field, value)` pairs, in any order.
    pub fn to_name<S: AsRef<str>>(&self, key: &[(S, KeyValue)]) -> Result<DatasetName> {
        for (i, (name, _)) in key.iter().enumerate() {
            let name = name.as_ref();
            if self.field(name).is_none() {
                return Err(self.invalid(self.unknown_field(name)));
            }
            if key[..i].iter().any(|(n, _)| n.as_ref() == name) {
                return Err(self.invalid(format!("field {name:?} is given more than once")));
            }
        }
        let missing: Vec<String> = self
            .fields()
            .filter(|f| !key.iter().any(|(n, _)| n.as_ref() == f.name))
            .map(|f| format!("{:?}", f.name))
            .collect();
        if !missing.is_empty() {
            return Err(self.invalid(format!(
                "missing field{} {} (a key has {})",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                self.field_list()
            )));
        }
        let values: Vec<KeyValue> = self
            .fields()
            .filter_map(|f| {
                key.iter()
                    .find(|(n, _)| n.as_ref() == f.name)
                    .map(|(_, v)| v.clone())
            })
            .collect();
        self.name_from_values(&values)
    }

    /// The name of the key given as values in field order (level by level).
    pub fn name_from_values(&self, values: &[KeyValue]) -> Result<DatasetName> {
        let count = self.fields().count();
        if values.len() != count {
            return Err(self.invalid(format!(
                "expected {count} values ({}), got {}",
                self.field_list(),
                values.len()
            )));
        }
        let mut name = self.collection.to_string();
        let mut values = values.iter();
        for level in &self.levels {
            name.push('/');
            for (i, (field, value)) in level.iter().zip(values.by_ref()).enumerate() {
                if i > 0 {
                    name.push(self.separator);
                }
                match (field.kind, value) {
                    (KeyKind::Int, KeyValue::Int(v)) => name.push_str(
                        &self
                            .int_text(&field.name, *v)
                            .map_err(|r| self.invalid(r))?,
                    ),
                    (KeyKind::Str, KeyValue::Str(s)) => {
                        if let Some(reason) = self.str_error(&field.name, s, i == 0) {
                            return Err(self.invalid(reason));
                        }
                        name.push_str(s);
                    }
                    (kind, value) => {
                        return Err(self.invalid(format!(
                            "field {:?} is {kind}, got the {} value {:?}",
                            field.name,
                            value.kind(),
                            value.to_string()
                        )));
                    }
                }
            }
        }
        DatasetName::new(name).map_err(|e| self.invalid(e.to_string()))
    }

    /// The key of a dataset name, as `(field, value)` pairs in field order.
    pub fn parse(&self, name: &DatasetName) -> Result<Vec<(String, KeyValue)>> {
        let mismatch = |reason: String| CoreError::KeyMismatch {
            name: name.to_string(),
            collection: self.collection.to_string(),
            pattern: self.pattern(),
            reason,
        };
        let rest = name
            .as_str()
            .strip_prefix(self.collection.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| {
                mismatch(format!(
                    "it is not under the collection's prefix \"{}/\"",
                    self.collection
                ))
            })?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.len() != self.levels.len() {
            return Err(mismatch(format!(
                "it has {} level{} below {:?} where the collection has {} ({})",
                segments.len(),
                if segments.len() == 1 { "" } else { "s" },
                self.collection.as_str(),
                self.levels.len(),
                self.levels_pattern()
            )));
        }
        let mut out = Vec::with_capacity(self.fields().count());
        for (segment, level) in segments.iter().zip(&self.levels) {
            let parts: Vec<&str> = segment.split(self.separator).collect();
            if parts.len() != level.len() {
                return Err(mismatch(format!(
                    "segment {segment:?} has {} field{} separated by {:?}, expected {} ({})",
                    parts.len(),
                    if parts.len() == 1 { "" } else { "s" },
                    self.separator,
                    level.len(),
                    self.level_pattern(level)
                )));
            }
            for (i, (part, field)) in parts.iter().zip(level).enumerate() {
                let value = match field.kind {
                    KeyKind::Int => {
                        KeyValue::Int(Self::parse_int(&field.name, part).map_err(mismatch)?)
                    }
                    KeyKind::Str => {
                        if let Some(reason) = self.str_error(&field.name, part, i == 0) {
                            return Err(mismatch(reason));
                        }
                        KeyValue::Str(part.to_string())
                    }
                };
                out.push((field.name.clone(), value));
            }
        }
        Ok(out)
    }

    /// Parses the text of one field's value (a CLI `field=value`) in the field's type, with
    /// the checks a key gets: an accepted value is one that can be part of a name.
    pub fn parse_value(&self, field: &str, text: &str) -> Result<KeyValue> {
        let (f, starts_segment) = self
            .position(field)
            .ok_or_else(|| self.invalid(self.unknown_field(field)))?;
        match f.kind {
            KeyKind::Int => {
                let v = Self::parse_int(field, text).map_err(|r| self.invalid(r))?;
                self.int_text(field, v).map_err(|r| self.invalid(r))?;
                Ok(KeyValue::Int(v))
            }
            KeyKind::Str => match self.str_error(field, text, starts_segment) {
                Some(reason) => Err(self.invalid(reason)),
                None => Ok(KeyValue::Str(text.to_string())),
            },
        }
    }
}

fn level_label(i: usize) -> String {
    if i == 0 {
        "the top level".into()
    } else {
        format!("sub-level {i}")
    }
}

/// A Rust type whose values are the keys of one collection: `#[derive(tarn::Key)]` on a
/// struct implements it (see the `tarn` crate).
pub trait Key: Sized {
    /// The collection's schema (built once).
    fn key_schema() -> &'static KeySchema;
    /// The key's values in field order (level by level).
    fn key_values(&self) -> Result<Vec<KeyValue>>;
    /// The key from values in field order.
    fn from_key_values(values: Vec<KeyValue>) -> Result<Self>;

    /// The dataset name of this key, e.g. `weather/temp-berlin/1D`.
    fn to_path(&self) -> Result<DatasetName> {
        Self::key_schema().name_from_values(&self.key_values()?)
    }

    /// The key of a dataset name of the collection.
    fn from_name(name: &DatasetName) -> Result<Self> {
        let values = Self::key_schema().parse(name)?;
        Self::from_key_values(values.into_iter().map(|(_, v)| v).collect())
    }

    /// The key of a dataset name given as text.
    fn from_path(path: &str) -> Result<Self> {
        Self::from_name(&DatasetName::new(path)?)
    }
}

/// What `#[derive(tarn::Key)]` expands to calls; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// The derive checked every rule of [`KeySchema::new`] at compile time.
    pub fn schema(collection: &str, separator: char, levels: &[&[(&str, KeyKind)]]) -> KeySchema {
        let levels = levels
            .iter()
            .map(|l| l.iter().map(|(n, k)| KeyField::new(*n, *k)).collect())
            .collect();
        KeySchema::new(collection, separator, levels)
            .unwrap_or_else(|e| panic!("#[derive(tarn::Key)] made an invalid schema: {e}"))
    }

    pub fn int_value<T>(schema: &KeySchema, field: &str, value: T) -> Result<KeyValue>
    where
        T: TryInto<i64> + Copy + fmt::Display,
    {
        value.try_into().map(KeyValue::Int).map_err(|_| {
            schema.invalid(format!(
                "value {value} of field {field:?} does not fit in a 64-bit signed integer, which is how keys store ints"
            ))
        })
    }

    /// Values handed out in field order to the derived `from_key_values`.
    pub struct Values<'a> {
        schema: &'a KeySchema,
        values: std::vec::IntoIter<KeyValue>,
    }

    impl<'a> Values<'a> {
        pub fn new(schema: &'a KeySchema, values: Vec<KeyValue>) -> Result<Self> {
            let count = schema.fields().count();
            if values.len() != count {
                return Err(schema.invalid(format!(
                    "expected {count} values ({}), got {}",
                    schema.field_list(),
                    values.len()
                )));
            }
            Ok(Self {
                schema,
                values: values.into_iter(),
            })
        }

        fn next(&mut self, field: &str) -> Result<KeyValue> {
            self.values
                .next()
                .ok_or_else(|| self.schema.invalid(format!("no value for field {field:?}")))
        }

        pub fn next_str(&mut self, field: &str) -> Result<String> {
            match self.next(field)? {
                KeyValue::Str(s) => Ok(s),
                KeyValue::Int(v) => Err(self
                    .schema
                    .invalid(format!("field {field:?} is str, got the int value {v}"))),
            }
        }

        pub fn next_int<T: TryFrom<i64>>(&mut self, field: &str) -> Result<T> {
            match self.next(field)? {
                KeyValue::Int(v) => T::try_from(v).map_err(|_| {
                    self.schema.invalid(format!(
                        "value {v} of field {field:?} is out of range for {}",
                        std::any::type_name::<T>()
                    ))
                }),
                KeyValue::Str(s) => Err(self
                    .schema
                    .invalid(format!("field {field:?} is int, got the str value {s:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn weather() -> KeySchema {
        KeySchema::parse_spec("weather", "quantity:str,city:str", &["frequency:str"], None)
            .expect("valid schema")
    }

    fn runs() -> KeySchema {
        KeySchema::new(
            "ml/runs",
            '_',
            vec![vec![KeyField::str("model"), KeyField::int("seed")]],
        )
        .expect("valid schema")
    }

    fn name(s: &str) -> DatasetName {
        DatasetName::new(s).expect("valid name")
    }

    fn key(pairs: &[(&str, KeyValue)]) -> Vec<(String, KeyValue)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn formats_and_parses_the_example() {
        let s = weather();
        assert_eq!(s.pattern(), "weather/<quantity>-<city>/<frequency>");
        let k = key(&[
            ("city", "berlin".into()),
            ("frequency", "1D".into()),
            ("quantity", "temp".into()),
        ]);
        let n = s.to_name(&k).expect("formats");
        assert_eq!(n.as_str(), "weather/temp-berlin/1D");
        assert_eq!(
            s.parse(&n).expect("parses"),
            key(&[
                ("quantity", "temp".into()),
                ("city", "berlin".into()),
                ("frequency", "1D".into()),
            ])
        );
        let r = runs();
        let n = r
            .name_from_values(&["gpt".into(), KeyValue::Int(-3)])
            .expect("negative ints are fine with '_'");
        assert_eq!(n.as_str(), "ml/runs/gpt_-3");
        assert_eq!(
            r.parse(&n).expect("parses"),
            key(&[("model", "gpt".into()), ("seed", KeyValue::Int(-3))])
        );
    }

    #[test]
    fn bad_keys_are_refused_with_the_value_and_the_field() {
        let s = weather();
        let cases: Vec<(Vec<(&str, KeyValue)>, &str)> = vec![
            (
                vec![
                    ("quantity", "temp-max".into()),
                    ("city", "b".into()),
                    ("frequency", "1D".into()),
                ],
                r#"value "temp-max" of field "quantity" contains the separator '-'"#,
            ),
            (
                vec![
                    ("quantity", "a/b".into()),
                    ("city", "b".into()),
                    ("frequency", "1D".into()),
                ],
                r#"value "a/b" of field "quantity" contains '/'"#,
            ),
            (
                vec![
                    ("quantity", "".into()),
                    ("city", "b".into()),
                    ("frequency", "1D".into()),
                ],
                r#"value "" of field "quantity" is empty"#,
            ),
            (
                vec![
                    ("quantity", "a b".into()),
                    ("city", "b".into()),
                    ("frequency", "1D".into()),
                ],
                r#"value "a b" of field "quantity" has character ' ', which is not allowed (use letters, digits and _ . =)"#,
            ),
            (
                vec![
                    ("quantity", ".x".into()),
                    ("city", "b".into()),
                    ("frequency", "1D".into()),
                ],
                r#"value ".x" of field "quantity" starts with '.'"#,
            ),
            (
                vec![("quantity", "t".into()), ("frequency", "1D".into())],
                r#"missing field "city" (a key has quantity, city, frequency)"#,
            ),
            (
                vec![
                    ("quantity", "t".into()),
                    ("city", "b".into()),
                    ("frequency", "1D".into()),
                    ("x", "1".into()),
                ],
                r#"unknown field "x" (the fields are quantity, city, frequency)"#,
            ),
            (
                vec![
                    ("quantity", "t".into()),
                    ("city", "b".into()),
                    ("frequency", "1D".into()),
                    ("city", "c".into()),
                ],
                r#"field "city" is given more than once"#,
            ),
            (
                vec![
                    ("quantity", KeyValue::Int(1)),
                    ("city", "b".into()),
                    ("frequency", "1D".into()),
                ],
                r#"field "quantity" is str, got the int value "1""#,
            ),
        ];
        for (k, needle) in cases {
            let err = s.to_name(&k).expect_err(needle).to_string();
            assert!(
                err.starts_with(r#"invalid key for collection "weather" (weather/<quantity>-<city>/<frequency>): "#),
                "{err}"
            );
            assert!(err.contains(needle), "{err}\n  should contain\n{needle}");
        }
        // A '.' is fine inside a segment, not at its start.
        assert_eq!(
            s.name_from_values(&["t".into(), ".b".into(), "1D".into()])
                .expect("'.' after the separator")
                .as_str(),
            "weather/t-.b/1D"
        );
    }

    #[test]
    fn negative_ints_with_the_dash_separator_are_refused_with_the_reason() {
        let s = KeySchema::new("m", '-', vec![vec![KeyField::int("delta")]]).expect("schema");
        let err = s
            .name_from_values(&[KeyValue::Int(-5)])
            .expect_err("sep")
            .to_string();
        assert!(
            err.contains("value -5 of int field \"delta\" contains the separator '-'"),
            "{err}"
        );
        assert!(
            err.contains("negative numbers need a separator other than '-'"),
            "{err}"
        );
        let err = s.parse_value("delta", "-5").expect_err("sep").to_string();
        assert!(err.contains("contains the separator '-'"), "{err}");
        assert_eq!(s.parse_value("delta", "5"), Ok(KeyValue::Int(5)));
    }

    #[test]
    fn names_that_do_not_match_are_refused_with_the_reason() {
        let s = weather();
        for (n, needle) in [
            (
                "weather/temp/1D",
                r#"segment "temp" has 1 field separated by '-', expected 2 (<quantity>-<city>)"#,
            ),
            (
                "weather/temp-berlin-x/1D",
                r#"segment "temp-berlin-x" has 3 fields"#,
            ),
            (
                "weather/temp-berlin",
                r#"it has 1 level below "weather" where the collection has 2 (<quantity>-<city>/<frequency>)"#,
            ),
            ("weather/temp-berlin/1D/x", "it has 3 levels"),
            (
                "weather",
                r#"it is not under the collection's prefix "weather/""#,
            ),
            (
                "weatherx/temp-berlin/1D",
                "not under the collection's prefix",
            ),
            ("other/temp-berlin/1D", "not under the collection's prefix"),
            ("weather/temp-/1D", r#"value "" of field "city" is empty"#),
        ] {
            let err = s.parse(&name(n)).expect_err(n).to_string();
            assert!(
                err.starts_with(&format!(
                    "dataset name {n:?} does not match collection \"weather\" (weather/<quantity>-<city>/<frequency>): "
                )),
                "{err}"
            );
            assert!(err.contains(needle), "{err}\n  should contain\n{needle}");
        }
        let r = runs();
        for (n, needle) in [
            (
                "ml/runs/a_x",
                r#"value "x" of int field "seed" is not an integer"#,
            ),
            (
                "ml/runs/a_007",
                r#"value "007" of int field "seed" is not written as tarn writes the integer 7"#,
            ),
            ("ml/runs/a_-0", "not written as tarn writes the integer 0"),
            (
                "ml/runs/a_99999999999999999999",
                "is out of range (ints are 64-bit)",
            ),
        ] {
            let err = r.parse(&name(n)).expect_err(n).to_string();
            assert!(err.contains(needle), "{err}\n  should contain\n{needle}");
        }
    }

    #[test]
    fn bad_schemas_are_refused() {
        let f = |n: &str| KeyField::str(n);
        for (collection, sep, levels, needle) in [
            ("w", '-', vec![], "at least one field"),
            ("w", '-', vec![vec![]], "at least one field"),
            (
                "w",
                '-',
                vec![vec![f("a")], vec![]],
                "sub-level 1 has no fields",
            ),
            ("w", '/', vec![vec![f("a")]], "separator '/' is not one of"),
            ("w", ':', vec![vec![f("a")]], "separator ':' is not one of"),
            (
                "w",
                '-',
                vec![vec![f("a"), f("a")]],
                "field name \"a\" is used twice",
            ),
            ("w", '-', vec![vec![f("a")], vec![f("a")]], "used twice"),
            (
                "w",
                '-',
                vec![vec![f("1a")]],
                "field name \"1a\" is not valid",
            ),
            (
                "w",
                '-',
                vec![vec![f("a-b")]],
                "field name \"a-b\" is not valid",
            ),
            ("w", '-', vec![vec![f("")]], "field name \"\" is not valid"),
            (
                "a b",
                '-',
                vec![vec![f("a")]],
                "the collection name is not a valid dataset path: character ' '",
            ),
            ("../x", '-', vec![vec![f("a")]], "starts with '.'"),
            ("", '-', vec![vec![f("a")]], "it is empty"),
        ] {
            let err = KeySchema::new(collection, sep, levels)
                .expect_err(needle)
                .to_string();
            assert!(
                err.starts_with(&format!(
                    "invalid key schema for collection {collection:?}: "
                )),
                "{err}"
            );
            assert!(err.contains(needle), "{err}\n  should contain\n{needle}");
        }
    }

    #[test]
    fn field_specs() {
        assert_eq!(
            KeyField::parse_list("a:str, b:int").expect("ok"),
            vec![KeyField::str("a"), KeyField::int("b")]
        );
        for (spec, needle) in [
            ("a", "no type: write a:str or a:int"),
            ("a:", "unknown type \"\": use int or str"),
            ("a:string", "unknown type \"string\""),
            ("a:str,,b:int", "empty field"),
            ("a:str,", "empty field"),
            ("", "no fields"),
            ("1a:str", "field name \"1a\" is not valid"),
        ] {
            let err = KeyField::parse_list(spec).expect_err(spec).to_string();
            assert!(err.starts_with("invalid key field spec "), "{err}");
            assert!(err.contains(needle), "{spec:?}: {err}");
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let s = weather();
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(
            json,
            r#"{"collection":"weather","separator":"-","levels":[[{"name":"quantity","kind":"str"},{"name":"city","kind":"str"}],[{"name":"frequency","kind":"str"}]]}"#
        );
        assert_eq!(serde_json::from_str::<KeySchema>(&json).expect("back"), s);
        let bad = json.replace(r#""separator":"-""#, r#""separator":"/""#);
        let err = serde_json::from_str::<KeySchema>(&bad)
            .expect_err("bad sep")
            .to_string();
        assert!(err.contains("separator '/'"), "{err}");
        assert_eq!(serde_json::to_string(&KeyValue::Int(3)).expect("json"), "3");
        assert_eq!(
            serde_json::to_string(&KeyValue::from("a")).expect("json"),
            "\"a\""
        );
    }

    #[test]
    fn parse_value_uses_the_field_type() {
        let r = runs();
        assert_eq!(r.parse_value("seed", "42"), Ok(KeyValue::Int(42)));
        assert_eq!(r.parse_value("model", "42"), Ok(KeyValue::from("42")));
        let err = r.parse_value("seed", "+4").expect_err("+").to_string();
        assert!(
            err.contains("not written as tarn writes the integer 4"),
            "{err}"
        );
        let err = r.parse_value("seed", "x").expect_err("int").to_string();
        assert!(
            err.contains(r#"value "x" of int field "seed" is not an integer"#),
            "{err}"
        );
        let err = r.parse_value("nope", "x").expect_err("unknown").to_string();
        assert!(
            err.contains(r#"unknown field "nope" (the fields are model, seed)"#),
            "{err}"
        );
        let err = r.parse_value("model", "a_b").expect_err("sep").to_string();
        assert!(err.contains("contains the separator '_'"), "{err}");
    }

    #[test]
    fn holds_is_strict_and_by_segment() {
        let s = weather();
        assert!(s.holds(&name("weather/a-b/c")));
        assert!(s.holds(&name("weather/x")));
        assert!(!s.holds(&name("weather")));
        assert!(!s.holds(&name("weatherx/a-b/c")));
    }

    /// A str value valid in any position: the allowed characters less the separator, no
    /// leading '.'.
    fn str_value(sep: char) -> impl Strategy<Value = String> {
        let punct: String = ['_', '.', '=', '-'].iter().filter(|c| **c != sep).collect();
        let first: String = punct.chars().filter(|c| *c != '.').collect();
        // '-' last in a class is literal.
        let class = |p: &str| {
            let (dash, rest): (String, String) = p.chars().partition(|c| *c == '-');
            format!("[A-Za-z0-9{rest}{dash}]")
        };
        proptest::string::string_regex(&format!("{}{}{{0,7}}", class(&first), class(&punct)))
            .expect("valid regex")
    }

    fn schema_and_values() -> impl Strategy<Value = (KeySchema, Vec<KeyValue>)> {
        let sep = prop::sample::select(SEPARATORS.to_vec());
        let kinds = prop::collection::vec(prop::collection::vec(any::<bool>(), 1..4), 1..4);
        (sep, kinds).prop_flat_map(|(sep, kinds)| {
            let levels = kinds
                .iter()
                .enumerate()
                .map(|(l, level)| {
                    level
                        .iter()
                        .enumerate()
                        .map(|(i, int)| {
                            let kind = if *int { KeyKind::Int } else { KeyKind::Str };
                            KeyField::new(format!("f{l}_{i}"), kind)
                        })
                        .collect()
                })
                .collect();
            let schema = KeySchema::new("c/d", sep, levels).expect("schema");
            let values: Vec<BoxedStrategy<KeyValue>> = schema
                .fields()
                .map(|f| match (f.kind, sep) {
                    // Negative numbers would contain the '-' separator.
                    (KeyKind::Int, '-') => (0..=i64::MAX).prop_map(KeyValue::Int).boxed(),
                    (KeyKind::Int, _) => any::<i64>().prop_map(KeyValue::Int).boxed(),
                    (KeyKind::Str, _) => str_value(sep).prop_map(KeyValue::Str).boxed(),
                })
                .collect();
            (Just(schema), values)
        })
    }

    proptest! {
        #[test]
        fn every_valid_key_round_trips((schema, values) in schema_and_values()) {
            let name = schema.name_from_values(&values).expect("formats");
            let parsed = schema.parse(&name).expect("parses");
            prop_assert_eq!(parsed.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), values);
        }
    }
}
