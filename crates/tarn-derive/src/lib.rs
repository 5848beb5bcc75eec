//! `#[derive(tarn::Key)]`: implements `tarn::Key` for a struct whose fields are the key of a
//! tarn collection. Use it through the `tarn` crate, whose paths (`::tarn::...`) the
//! generated code names:
//!
//! ```ignore
//! #[derive(tarn::Key)]
//! #[tarn(collection = "weather", separator = "-")] // the separator is optional, '-' by default
//! struct WeatherKey {
//!     quantity: String,
//!     city: String,
//!     #[tarn(level = 1)]
//!     frequency: String,
//! }
//! // WeatherKey { .. }.to_path()? == "weather/temp-berlin/1D"
//! ```
//!
//! `String` fields are `str` fields, integer fields (`i8` to `i64`, `isize`, `u8` to `u64`,
//! `usize`) are `int` fields, stored as `i64`. Fields go to level 0 (the segment right under
//! the collection) unless `#[tarn(level = N)]`. Everything the schema needs to be valid
//! (collection name, separator, field names, levels without gaps) is checked here, at
//! compile time, with an error on the offending token.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, Lit, LitStr, Type};

const SEPARATORS: [char; 4] = ['-', '_', '.', '='];
const INT_TYPES: [&str; 10] = [
    "i8", "i16", "i32", "i64", "isize", "u8", "u16", "u32", "u64", "usize",
];
/// `tarn_core::DatasetName::MAX_LEN`.
const MAX_NAME_LEN: usize = 1024;

#[proc_macro_derive(Key, attributes(tarn))]
pub fn derive_key(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
}

struct Field {
    ident: syn::Ident,
    name: String,
    ty: Type,
    kind: Kind,
    level: usize,
    level_span: Span,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let ident = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(tarn::Key)] does not support generic structs",
        ));
    }
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named,
            _ => {
                return Err(syn::Error::new(
                    ident.span(),
                    "#[derive(tarn::Key)] needs a struct with named fields, one per key field",
                ));
            }
        },
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                "#[derive(tarn::Key)] works on structs only, not enums",
            ));
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[derive(tarn::Key)] works on structs only, not unions",
            ));
        }
    };
    let (collection, separator) = struct_attributes(input)?;
    let mut fields = Vec::new();
    for f in &named.named {
        fields.push(field(f)?);
    }
    if fields.is_empty() {
        return Err(syn::Error::new(
            ident.span(),
            "a key needs at least one field",
        ));
    }
    let top = fields.iter().map(|f| f.level).max().unwrap_or(0);
    for level in 0..=top {
        if !fields.iter().any(|f| f.level == level) {
            let span = fields
                .iter()
                .filter(|f| f.level > level)
                .map(|f| f.level_span)
                .next()
                .unwrap_or_else(|| ident.span());
            return Err(syn::Error::new(
                span,
                format!(
                    "level {level} has no field: number levels 0, 1, 2, ... without gaps \
                     (level 0, the default, is the segment right under the collection)"
                ),
            ));
        }
    }
    // Schema order: level by level, declaration order within a level.
    let mut ordered: Vec<&Field> = fields.iter().collect();
    ordered.sort_by_key(|f| f.level);

    let levels = (0..=top).map(|level| {
        let entries = ordered.iter().filter(|f| f.level == level).map(|f| {
            let name = &f.name;
            let kind = match f.kind {
                Kind::Str => quote!(::tarn::KeyKind::Str),
                Kind::Int => quote!(::tarn::KeyKind::Int),
            };
            quote!((#name, #kind))
        });
        quote!(&[#(#entries),*])
    });
    let to_values = ordered.iter().map(|f| {
        let (id, name) = (&f.ident, &f.name);
        match f.kind {
            Kind::Str => quote!(::tarn::KeyValue::Str(::std::clone::Clone::clone(&self.#id))),
            Kind::Int => {
                quote!(::tarn::core::key::__private::int_value(__tarn_schema, #name, self.#id)?)
            }
        }
    });
    let bindings = ordered.iter().map(|f| {
        let (id, name, ty) = (&f.ident, &f.name, &f.ty);
        match f.kind {
            Kind::Str => quote!(let #id: #ty = __tarn_values.next_str(#name)?;),
            Kind::Int => quote!(let #id: #ty = __tarn_values.next_int::<#ty>(#name)?;),
        }
    });
    let idents = fields.iter().map(|f| &f.ident);
    let collection = collection.value();
    Ok(quote! {
        #[automatically_derived]
        impl ::tarn::Key for #ident {
            fn key_schema() -> &'static ::tarn::KeySchema {
                static SCHEMA: ::std::sync::OnceLock<::tarn::KeySchema> = ::std::sync::OnceLock::new();
                SCHEMA.get_or_init(|| {
                    ::tarn::core::key::__private::schema(#collection, #separator, &[#(#levels),*])
                })
            }

            fn key_values(&self) -> ::tarn::core::Result<::std::vec::Vec<::tarn::KeyValue>> {
                #[allow(unused_variables)]
                let __tarn_schema = <Self as ::tarn::Key>::key_schema();
                ::std::result::Result::Ok(::std::vec![#(#to_values),*])
            }

            fn from_key_values(
                values: ::std::vec::Vec<::tarn::KeyValue>,
            ) -> ::tarn::core::Result<Self> {
                let mut __tarn_values = ::tarn::core::key::__private::Values::new(
                    <Self as ::tarn::Key>::key_schema(),
                    values,
                )?;
                #(#bindings)*
                ::std::result::Result::Ok(Self { #(#idents),* })
            }
        }
    })
}

/// `#[tarn(collection = "...", separator = "-")]` on the struct.
fn struct_attributes(input: &DeriveInput) -> syn::Result<(LitStr, char)> {
    let mut collection: Option<LitStr> = None;
    let mut separator: Option<char> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("tarn")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("collection") {
                if collection.is_some() {
                    return Err(meta.error("collection is given twice"));
                }
                let lit: LitStr = meta.value()?.parse()?;
                check_collection(&lit)?;
                collection = Some(lit);
                Ok(())
            } else if meta.path.is_ident("separator") {
                if separator.is_some() {
                    return Err(meta.error("separator is given twice"));
                }
                let lit: Lit = meta.value()?.parse()?;
                let (value, span) = match &lit {
                    Lit::Str(s) => {
                        let v = s.value();
                        let mut chars = v.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => (c, s.span()),
                            _ => {
                                return Err(syn::Error::new(
                                    s.span(),
                                    "the separator is one character: one of - _ . =",
                                ));
                            }
                        }
                    }
                    Lit::Char(c) => (c.value(), c.span()),
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "the separator is a string or char literal: one of \"-\" \"_\" \".\" \"=\"",
                        ));
                    }
                };
                if !SEPARATORS.contains(&value) {
                    return Err(syn::Error::new(
                        span,
                        format!(
                            "separator {value:?} is not one of '-', '_', '.', '=' (the separator must be \
                             a character allowed in names; it is then not allowed inside values)"
                        ),
                    ));
                }
                separator = Some(value);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown #[tarn] attribute on a key struct: expected collection = \"...\" or separator = \"-\"",
                ))
            }
        })?;
    }
    let collection = collection.ok_or_else(|| {
        syn::Error::new(
            input.ident.span(),
            "#[derive(tarn::Key)] needs the collection's name: #[tarn(collection = \"name\")]",
        )
    })?;
    Ok((collection, separator.unwrap_or('-')))
}

/// The dataset-name rules of `tarn_core::DatasetName` (SPEC §1), for the collection name.
fn check_collection(lit: &LitStr) -> syn::Result<()> {
    let name = lit.value();
    let bad = |reason: String| {
        Err(syn::Error::new(
            lit.span(),
            format!("invalid collection name {name:?}: {reason}"),
        ))
    };
    if name.is_empty() {
        return bad("it is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!("it is longer than {MAX_NAME_LEN} bytes"));
    }
    if name.starts_with('/') {
        return bad("absolute paths are not dataset names".into());
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return bad("it has an empty segment (a leading, trailing or doubled '/')".into());
        }
        if segment.starts_with('.') {
            return bad(format!("segment {segment:?} starts with '.'"));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=' | '-')))
        {
            return bad(format!(
                "character {c:?} is not allowed (use letters, digits and _ . = - in segments joined by /)"
            ));
        }
    }
    Ok(())
}

fn field(f: &syn::Field) -> syn::Result<Field> {
    let ident = f
        .ident
        .clone()
        .ok_or_else(|| syn::Error::new_spanned(f, "key fields are named"))?;
    let name = ident.unraw().to_string();
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(syn::Error::new(
            ident.span(),
            format!(
                "key field name {name:?} must be ASCII: a letter or '_' followed by letters, digits and '_'"
            ),
        ));
    }
    let kind = kind_of(&f.ty).ok_or_else(|| {
        syn::Error::new_spanned(
            &f.ty,
            "unsupported key field type: use String (a str field) or an integer type \
             (i8, i16, i32, i64, isize, u8, u16, u32, u64, usize: an int field)",
        )
    })?;
    let mut level = 0;
    let mut level_span = ident.span();
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("tarn")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("level") {
                let lit: syn::LitInt = meta.value()?.parse()?;
                level = lit.base10_parse::<usize>()?;
                level_span = lit.span();
                Ok(())
            } else {
                Err(meta.error("unknown #[tarn] attribute on a key field: expected level = N"))
            }
        })?;
    }
    Ok(Field {
        ident,
        name,
        ty: f.ty.clone(),
        kind,
        level,
        level_span,
    })
}

fn kind_of(ty: &Type) -> Option<Kind> {
    let Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if !last.arguments.is_none() {
        return None;
    }
    let name = last.ident.to_string();
    if name == "String" {
        Some(Kind::Str)
    } else if INT_TYPES.contains(&name.as_str()) {
        Some(Kind::Int)
    } else {
        None
    }
}
