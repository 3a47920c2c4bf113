//! The `#[task]` attribute of the wfhost guest SDK.
//!
//! `#[task]` leaves the function as it is, so it stays callable and testable
//! as plain Rust, and adds beside it a descriptor type of the same name (a
//! struct lives in the type namespace, the function in the value namespace)
//! that implements `wfhost_guest::Task`: the task's name, parameters and doc,
//! and a `call` that binds JSON arguments to the parameters.

#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::{
    Attribute, Expr, FnArg, GenericArgument, ItemFn, Lit, Meta, Pat, PathArguments, ReturnType,
    Type, parse_macro_input, spanned::Spanned,
};

/// Marks a plain function as a wfhost task.
///
/// Parameters may be any serde-deserializable type; an `Option<T>` parameter
/// may be left out by the caller. One parameter may be `&Context` to receive
/// the invocation context. The return type may be any serializable value,
/// `Outcome` (to replace the step), or a `Result` of either whose error
/// converts into `TaskError`.
///
/// `#[task(max_retries = N)]` gives the task its own limit of retries
/// (Celery's `@app.task(max_retries=N)`): where a step's options set no
/// `max_retries`, each retry the task asks for allows at most `N`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let settings = match settings(TokenStream2::from(attr)) {
        Ok(settings) => settings,
        Err(err) => return err.to_compile_error().into(),
    };
    let function = parse_macro_input!(item as ItemFn);
    match expand(&function, &settings) {
        Ok(descriptor) => quote!(#function #descriptor).into(),
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#function #err).into()
        }
    }
}

/// What `#[task(...)]` says beside the function.
#[derive(Default)]
struct Settings {
    max_retries: Option<u32>,
}

/// Reads `max_retries = N`, the one setting there is.
fn settings(attr: TokenStream2) -> syn::Result<Settings> {
    let mut settings = Settings::default();
    if attr.is_empty() {
        return Ok(settings);
    }
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("max_retries") {
            let value: syn::LitInt = meta.value()?.parse()?;
            settings.max_retries = Some(value.base10_parse()?);
            Ok(())
        } else {
            Err(meta.error("#[task] takes only `max_retries = N`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(settings)
}

/// How a parameter is filled.
enum ParamKind {
    /// The invocation context (`&Context`), not a task argument.
    Context,
    /// A required argument.
    Required(Box<Type>),
    /// An `Option<T>` argument that may be left out.
    Optional(Box<Type>),
}

struct Param {
    name: String,
    ty: Type,
    kind: ParamKind,
}

fn expand(function: &ItemFn, settings: &Settings) -> syn::Result<TokenStream2> {
    let sig = &function.sig;
    if let Some(asyncness) = sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "a #[task] cannot be async",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a #[task] cannot be generic",
        ));
    }
    let params = sig
        .inputs
        .iter()
        .map(parse_param)
        .collect::<syn::Result<Vec<_>>>()?;
    if params
        .iter()
        .filter(|p| matches!(p.kind, ParamKind::Context))
        .count()
        > 1
    {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a #[task] takes at most one &Context",
        ));
    }

    let ident = &sig.ident;
    let vis = &function.vis;
    let name = ident.to_string();
    let doc = doc_summary(&function.attrs);

    let mut bindings = Vec::new();
    let mut call_args = Vec::new();
    let mut infos = Vec::new();
    let mut names = Vec::new();
    let mut param_types = Vec::new();
    for param in &params {
        let var = format_ident!("__wfhost_{}", param.name);
        let index = names.len();
        match &param.kind {
            ParamKind::Context => {
                call_args.push(quote!(__wfhost_ctx));
                continue;
            }
            ParamKind::Required(ty) => {
                bindings.push(quote!(let #var: #ty = __wfhost_args.required(#index)?;));
                param_types.push(quote!(#ty));
            }
            ParamKind::Optional(inner) => {
                bindings.push(quote!(let #var: ::core::option::Option<#inner> =
                    __wfhost_args.optional(#index)?;));
                param_types.push(quote!(::core::option::Option<#inner>));
            }
        }
        call_args.push(quote!(#var));
        let param_name = &param.name;
        let type_name = type_name(&param.ty);
        let optional = matches!(param.kind, ParamKind::Optional(_));
        infos.push(quote!(::wfhost_guest::__private::ParamInfo {
            name: #param_name,
            type_name: #type_name,
            optional: #optional,
        }));
        names.push(param_name.clone());
    }

    let call = quote!(#ident(#(#call_args),*));
    let max_retries = match settings.max_retries {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let finish = finish_outcome(&sig.output, call);
    let result_type = result_type(&sig.output);
    let returns = match &sig.output {
        ReturnType::Default => String::new(),
        ReturnType::Type(..) => type_name(&result_type),
    };

    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #ident {}

        impl ::wfhost_guest::__private::Task for #ident {
            const NAME: &'static str = #name;
            const DOC: &'static str = #doc;
            const PARAMS: &'static [::wfhost_guest::__private::ParamInfo] = &[#(#infos),*];
            const MAX_RETRIES: ::core::option::Option<u32> = #max_retries;
            const RETURNS: &'static str = #returns;

            fn schema() -> ::wfhost_guest::__private::Value {
                #[allow(unused_imports)]
                use ::wfhost_guest::__private::{KnownReturns as _, OpenReturns as _};
                ::wfhost_guest::__private::task_schema(
                    ::std::vec![#(::wfhost_guest::schema::schema_of::<#param_types>()),*],
                    (&::wfhost_guest::__private::Returns::<#result_type>::new()).returns_schema(),
                )
            }

            fn call(
                __wfhost_ctx: &::wfhost_guest::Context,
                __wfhost_args: &mut ::wfhost_guest::__private::Arguments<'_>,
            ) -> ::core::result::Result<::wfhost_guest::Outcome, ::wfhost_guest::TaskError> {
                let _ = __wfhost_ctx;
                #(#bindings)*
                #finish
            }
        }

        // A task that `export_tasks!` does not list would never run: make
        // leaving it out a compile error rather than a silent omission.
        const _: fn() = crate::__wfhost_exported::<#ident>;
    })
}

fn parse_param(arg: &FnArg) -> syn::Result<Param> {
    let FnArg::Typed(typed) = arg else {
        return Err(syn::Error::new(arg.span(), "a #[task] cannot take self"));
    };
    let Pat::Ident(pat) = &*typed.pat else {
        return Err(syn::Error::new(
            typed.pat.span(),
            "#[task] parameters must be plain names: the name is the keyword",
        ));
    };
    let ty = (*typed.ty).clone();
    let kind = if is_context(&ty) {
        ParamKind::Context
    } else if let Some(inner) = option_inner(&ty) {
        ParamKind::Optional(Box::new(inner))
    } else if matches!(ty, Type::Reference(_)) {
        return Err(syn::Error::new(
            ty.span(),
            "#[task] parameters are owned values (String, not &str); only &Context is borrowed",
        ));
    } else {
        ParamKind::Required(Box::new(ty.clone()))
    };
    Ok(Param {
        name: pat.ident.to_string().trim_start_matches("r#").to_string(),
        ty,
        kind,
    })
}

/// The last path segment of a type, if it is a path.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => {
            last_segment(&reference.elem).is_some_and(|seg| seg.ident == "Context")
        }
        _ => false,
    }
}

/// The `n`-th generic type argument of the type's last segment named `name`.
fn generic_arg(ty: &Type, name: &str, n: usize) -> Option<Type> {
    let segment = last_segment(ty).filter(|seg| seg.ident == name)?;
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    args.args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty.clone()),
            _ => None,
        })
        .nth(n)
}

fn option_inner(ty: &Type) -> Option<Type> {
    generic_arg(ty, "Option", 0)
}

fn is_outcome(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|seg| seg.ident == "Outcome")
}

/// What the task gives when it succeeds: its return type, or the `Ok`
/// type of a `Result`; `()` for a function returning nothing.
fn result_type(output: &ReturnType) -> Type {
    match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => generic_arg(ty, "Result", 0).unwrap_or_else(|| (**ty).clone()),
    }
}

/// Turns the function's return value into `Result<Outcome, TaskError>`.
fn finish_outcome(output: &ReturnType, call: TokenStream2) -> TokenStream2 {
    let ty = match output {
        ReturnType::Default => {
            return quote! {
                #call;
                ::core::result::Result::Ok(::wfhost_guest::Outcome::Value(::wfhost_guest::__private::Value::Null))
            };
        }
        ReturnType::Type(_, ty) => ty,
    };
    let (ok_ty, is_result) = match generic_arg(ty, "Result", 0) {
        Some(ok) => (ok, true),
        None => ((**ty).clone(), false),
    };
    let to_outcome = if is_outcome(&ok_ty) {
        quote!(::core::result::Result::Ok(__wfhost_value))
    } else {
        quote!(::wfhost_guest::__private::value_outcome(
            Self::NAME,
            &__wfhost_value
        ))
    };
    if is_result {
        quote! {
            match #call {
                ::core::result::Result::Ok(__wfhost_value) => #to_outcome,
                ::core::result::Result::Err(__wfhost_err) => {
                    ::core::result::Result::Err(::core::convert::Into::into(__wfhost_err))
                }
            }
        }
    } else {
        quote! {
            let __wfhost_value = #call;
            #to_outcome
        }
    }
}

/// The first paragraph of the doc comment, joined into one line.
fn doc_summary(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        let Meta::NameValue(meta) = &attr.meta else {
            continue;
        };
        if !meta.path.is_ident("doc") {
            continue;
        }
        if let Expr::Lit(expr) = &meta.value
            && let Lit::Str(text) = &expr.lit
        {
            lines.push(text.value());
        }
    }
    lines
        .iter()
        .map(|line| line.trim())
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The type as written, without the spaces token printing adds.
fn type_name(ty: &Type) -> String {
    let printed = quote!(#ty).to_string();
    let tight = |c: char| "<>()[],;:&".contains(c);
    let chars: Vec<char> = printed.chars().collect();
    let mut out = String::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let before_comma_gap = prev == Some(',');
            if !before_comma_gap && (prev.is_some_and(tight) || next.is_some_and(tight)) {
                continue;
            }
        }
        out.push(c);
    }
    out
}
