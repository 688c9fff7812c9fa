//! `#[measured]`: RED metrics (calls, errors, duration, calls in progress) for a function,
//! recorded through the OpenTelemetry meter provider that `lookout::init` installs.
//!
//! Use it as `lookout::measured` (this crate is re-exported there). See the `lookout` crate's
//! `metrics` module for the instruments and their attributes.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{ItemFn, LitStr, Path, ReturnType};

/// Records `function.calls` (with `result` = `ok`/`error` and the error's `error.type`),
/// `function.duration` and `function.calls.concurrent` for every call of a sync or async function
/// or method.
///
/// A returned `Result::Err` counts as an error; a panic or a dropped future counts as an error of
/// type `panic` / `cancelled`. Arguments, all optional:
///
/// - `name = "checkout"`: the `function` attribute (default: the function's name);
/// - `ok_if = path::to::fn`: a `fn(&Return) -> bool`; true means success, false an error;
/// - `error_if = path::to::fn`: a `fn(&Return) -> bool`; true means an error, false success;
/// - `crate = path`: where lookout is, when it is re-exported under another name.
///
/// ```
/// #[derive(Debug)]
/// enum LookupError { Missing, Broken }
///
/// #[lookout::measured]
/// #[tracing::instrument]
/// async fn create_session(user: &str) -> Result<String, LookupError> {
///     Ok(format!("session of {user}"))
/// }
///
/// // A missing item is an answer, not a failure.
/// fn found_or_missing(r: &Result<u64, LookupError>) -> bool {
///     !matches!(r, Err(LookupError::Broken))
/// }
///
/// #[lookout::measured(ok_if = found_or_missing, name = "items.lookup")]
/// fn lookup(id: u64) -> Result<u64, LookupError> {
///     if id == 0 { Err(LookupError::Missing) } else { Ok(id) }
/// }
/// # assert!(lookup(0).is_err());
/// ```
#[proc_macro_attribute]
pub fn measured(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Args {
    name: Option<LitStr>,
    ok_if: Option<Path>,
    error_if: Option<Path>,
    krate: Option<Path>,
}

fn parse_args(args: TokenStream2) -> syn::Result<Args> {
    let mut out = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            out.name = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("ok_if") {
            out.ok_if = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("error_if") {
            out.error_if = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("crate") {
            out.krate = Some(meta.value()?.parse()?);
        } else {
            let found = meta.path.to_token_stream().to_string().replace(' ', "");
            return Err(meta.error(format!(
                "unknown argument `{found}` for #[measured]; expected `name = \"...\"`, `ok_if = path`, `error_if = path` or `crate = path`"
            )));
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, args)?;
    if let (Some(_), Some(error_if)) = (&out.ok_if, &out.error_if) {
        return Err(syn::Error::new(
            error_if.span(),
            "#[measured] takes `ok_if` or `error_if`, not both: each decides the result on its own",
        ));
    }
    if let Some(name) = &out.name
        && name.value().trim().is_empty()
    {
        return Err(syn::Error::new(
            name.span(),
            "#[measured(name = ...)] needs a non-empty name",
        ));
    }
    Ok(out)
}

/// Whether a type mentions `impl Trait` (which a `let` cannot name).
fn has_impl_trait(ty: &syn::Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_impl_trait(&mut self, _: &syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    f.visit_type(ty);
    f.0
}

fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(args)?;
    let item: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[measured] applies to functions and methods with a body",
        )
    })?;
    if let Some(c) = &item.sig.constness {
        return Err(syn::Error::new(
            c.span(),
            "#[measured] cannot measure a `const fn`: it may run at compile time, where nothing can be recorded; remove `const` or the attribute",
        ));
    }
    let krate = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::lookout));
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&item.sig.ident.to_string(), item.sig.ident.span()));
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let stmts = &block.stmts;
    let fake = match &sig.output {
        ReturnType::Type(_, ty) if !has_impl_trait(ty) => quote! {
            #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
            if false {
                let __lookout_fake: #ty = loop {};
                return __lookout_fake;
            }
        },
        _ => quote! {},
    };
    let call = if sig.asyncness.is_some() {
        quote! { async move { #fake #(#stmts)* }.await }
    } else {
        quote! { (move || { #fake #(#stmts)* })() }
    };
    let p = quote! { #krate::__private };
    let error_type = quote! { (&#p::Probe(&__lookout_ret)).error_type() };
    let classify = match (&args.ok_if, &args.error_if) {
        (Some(ok_if), _) => quote! {
            if #ok_if(&__lookout_ret) { #p::Outcome::Ok } else { #p::Outcome::Error(#error_type) }
        },
        (_, Some(error_if)) => quote! {
            if #error_if(&__lookout_ret) { #p::Outcome::Error(#error_type) } else { #p::Outcome::Ok }
        },
        _ => quote! { (&#p::Probe(&__lookout_ret)).outcome() },
    };
    let span = Span::call_site();
    let body = quote_spanned! {span=>
        {
            static __LOOKOUT_SITE: #p::Callsite = #p::Callsite::new(#name, ::core::module_path!());
            let __lookout_guard = __LOOKOUT_SITE.start();
            #[allow(clippy::redundant_closure_call)]
            let __lookout_ret = #call;
            {
                #[allow(unused_imports)]
                use #p::{IsResult as _, NotResult as _};
                let __lookout_outcome = #classify;
                __lookout_guard.finish(__lookout_outcome);
            }
            __lookout_ret
        }
    };
    Ok(quote! {
        #(#attrs)* #vis #sig #body
    })
}
