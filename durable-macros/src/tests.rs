//! Unit tests of lowering, liveness and expansion on parsed fns.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Workflow;
use crate::ctxt::Ctxt;
use crate::lower::{self, Cfg};

fn lowered(item: TokenStream) -> (Cfg, Result<(), String>) {
    let cx = Ctxt::new();
    let wf = Workflow::from_item(syn::parse2(item).expect("test input parses"));
    crate::check::check_signature(&cx, &wf);
    crate::check::check_body(&cx, &wf);
    let cfg = lower::lower(&cx, &wf);
    let result = cx.check().map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    });
    (cfg, result)
}

fn cfg(item: TokenStream) -> Cfg {
    let (cfg, result) = lowered(item);
    if let Err(e) = result {
        panic!("unexpected errors: {e}");
    }
    cfg
}

fn errors(item: TokenStream) -> String {
    match lowered(item).1 {
        Ok(()) => panic!("expected errors"),
        Err(e) => e,
    }
}

/// The locals saved at each point, by name.
fn frames(cfg: &Cfg) -> Vec<Vec<String>> {
    (0..cfg.points.len())
        .map(|p| {
            cfg.frame(p)
                .into_iter()
                .map(|b| cfg.bindings[b].name())
                .collect()
        })
        .collect()
}

/// The expansion, formatted by prettyplease (as it stands when it does not parse).
pub fn expansion(args: TokenStream, item: TokenStream) -> String {
    let tokens = crate::expand::durable(args, item);
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}

/// The expansion of a source file holding one `#[durable(..)] async fn`: the
/// attribute's arguments are the macro's, as when rustc expands it.
pub fn expansion_of_source(src: &str) -> String {
    let mut item: syn::ItemFn = syn::parse_str(src).expect("the source is one fn");
    let at = item.attrs.iter().position(|a| a.path().is_ident("durable"));
    let args = match at.map(|i| item.attrs.remove(i).meta) {
        Some(syn::Meta::List(list)) => list.tokens,
        _ => TokenStream::new(),
    };
    expansion(args, quote!(#item))
}

#[test]
fn show_expansion() {
    if let Ok(path) = std::env::var("DURABLE_SHOW") {
        let src = std::fs::read_to_string(path).unwrap();
        println!("{}", expansion_of_source(&src));
    }
}

#[test]
fn live_locals_at_each_point() {
    let cfg = cfg(quote! {
        async fn order(ctx: Ctx, order: Order) -> Result<Receipt, E> {
            let inventory = ctx.step("reserve", || reserve(&order.items)).await?;
            let payment = ctx.step("charge", || charge(order.amount)).await?;
            Ok(Receipt { order_id: order.id, payment, inventory })
        }
    });
    assert_eq!(
        frames(&cfg),
        vec![vec!["order"], vec!["order", "inventory"]]
    );
}

/// The emitted fingerprint of a workflow.
fn fingerprint(item: TokenStream) -> String {
    let text = crate::expand::durable(TokenStream::new(), item).to_string();
    let at = text.find("FINGERPRINT : u64 =").expect("a fingerprint");
    text[at..].split(';').next().unwrap().to_owned()
}

#[test]
fn shadowing_creates_separate_slots() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx) -> String {
            let x = 1u32;
            ctx.a().await;
            let y = x + 1;
            let x = "s".to_string();
            ctx.b().await;
            format!("{x}{y}")
        }
    });
    assert_eq!(frames(&cfg), vec![vec!["x"], vec!["y", "x"]]);
    assert_ne!(cfg.frame(0)[0], cfg.frame(1)[1], "two bindings, two slots");
}

#[test]
fn format_string_names_and_macro_identifiers_are_uses() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx) {
            let named = 1;
            let width = 2;
            let a = 3;
            let b = 4;
            let unused = 5;
            ctx.p().await;
            println!("{named:>width$}");
            let v = vec![a, b];
        }
    });
    assert_eq!(frames(&cfg), vec![vec!["named", "width", "a", "b"]]);
}

#[test]
fn field_and_method_names_are_not_uses() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx, o: Order) -> u32 {
            let id = 7;
            let len = 3;
            ctx.p().await;
            assert!(o.id > 0);
            o.len()
        }
    });
    assert_eq!(frames(&cfg), vec![vec!["o"]]);
}

#[test]
fn dead_locals_are_not_saved_and_closure_captures_are() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx, n: u32) -> u32 {
            let a = n + 1;
            let b = a * 2;
            let c = 5;
            ctx.p().await;
            let add = |n: u32| n + b;
            let shadowed = |c: u32| c;
            add(1) + shadowed(2)
        }
    });
    assert_eq!(frames(&cfg), vec![vec!["b"]]);
}

#[test]
fn uppercase_pattern_identifiers_are_not_bindings() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx, v: Option<u32>) -> u32 {
            let None = v else { return 0 };
            ctx.p().await;
            match v { None => 1, Some(x) => x }
        }
    });
    assert_eq!(frames(&cfg), vec![vec!["v"]]);
}

#[test]
fn operation_arguments_count_as_live_at_their_point() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx, order: Order) -> u32 {
            let items = order.items;
            ctx.step("reserve", || reserve(&items)).await
        }
    });
    assert_eq!(frames(&cfg), vec![vec!["items"]]);
    assert_eq!(cfg.points[0].label, "ctx.step(\"reserve\", ..)");
}

#[test]
fn loops_save_the_iterator_pattern_and_carried_locals() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx, n: u32) -> u64 {
            let mut total = 0u64;
            let unused_after = 1;
            for i in 0..n {
                total += ctx.step("add", move || add(i)).await?;
            }
            let mut k = 0;
            while k < 3 {
                k += ctx.p().await;
            }
            total
        }
    });
    assert_eq!(
        frames(&cfg),
        vec![vec!["total", "for i", "i"], vec!["total", "k"]]
    );
}

#[test]
fn branches_save_only_what_is_live_on_them() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx, n: u32) -> u32 {
            let a = 1;
            let b = 2;
            let r = if n > 0 {
                ctx.p(a).await
            } else {
                match n {
                    0 => { let z = b; ctx.q().await + z }
                    _ => b,
                }
            };
            r
        }
    });
    // `b` is only used on the else branch, which jumps before `p`; `a` is dead after `p`.
    assert_eq!(frames(&cfg), vec![vec!["a"], vec!["z"]]);
}

#[test]
fn an_assignment_defines_a_local_rather_than_reading_it() {
    // Declared without a value, assigned after the point: nothing to save.
    let g = cfg(quote! {
        async fn f(ctx: Ctx) -> u32 {
            let x;
            ctx.p().await;
            x = 1;
            x
        }
    });
    assert_eq!(frames(&g), vec![Vec::<String>::new()]);
    // Moved, then assigned from a point: the old value is not saved.
    let g = cfg(quote! {
        async fn f(ctx: Ctx, mut acc: Vec<u32>) -> Vec<u32> {
            let prev = acc;
            acc = ctx.p().await;
            acc.extend(prev);
            acc
        }
    });
    assert_eq!(frames(&g), vec![vec!["prev"]]);
    // Read and assigned: saved.
    let g = cfg(quote! {
        async fn f(ctx: Ctx, mut n: u32) -> u32 {
            n = n + ctx.p().await;
            n
        }
    });
    assert_eq!(frames(&g), vec![vec!["n"]]);
}

#[test]
fn a_local_hidden_by_a_shadowing_binding_is_parked_where_it_is_hidden() {
    let g = cfg(quote! {
        async fn f(ctx: Ctx) -> u32 {
            let x = 1u32;
            {
                let x = "s".to_owned();
                ctx.p(x).await;
            }
            x
        }
    });
    let outer = g.frame(0)[0];
    assert_eq!(g.bindings[outer].name(), "x");
    assert_eq!(
        g.places
            .parks
            .values()
            .flatten()
            .copied()
            .collect::<Vec<_>>(),
        vec![outer]
    );
    // A pattern binding that hides a live local is renamed, the local parked in the arm.
    let g = cfg(quote! {
        async fn f(ctx: Ctx, v: u32, o: Option<u32>) -> u32 {
            match o {
                Some(v) => ctx.p(v).await,
                None => 0,
            };
            v
        }
    });
    assert_eq!(g.places.renamed.len(), 1);
}

#[test]
fn misplaced_points_are_all_reported_at_once() {
    let e = errors(quote! {
        async fn f(ctx: Ctx, v: Option<u32>) -> u32 {
            let c = || ctx.a().await;
            let b = async { ctx.b().await };
            assert!(true, "{}", ctx.c().await);
            let x = match v { Some(x) if ctx.h().await => x, _ => 0 };
            unsafe { ctx.j().await };
            if let Some(y) = v && ctx.k().await { }
            0
        }
    });
    for needle in [
        "not inside a closure",
        "not inside an `async` block",
        "`assert!` may not evaluate its arguments once and in order",
        "a `match` guard cannot await a durable operation",
        "out of the `unsafe` block",
        "cannot follow a `let` in a `&&` chain",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn points_inside_expressions_keep_earlier_operands_in_temporaries() {
    let cfg = cfg(quote! {
        async fn f(ctx: Ctx, a: u32) -> u32 {
            let t = (make(), a, ctx.p().await, ctx.q().await);
            total(t)
        }
    });
    // At `p`: `make()`'s value; at `q`: it and `p`'s outcome. `a` is evaluated after
    // the points (nothing later touches it), so it is saved as itself.
    assert_eq!(
        frames(&cfg),
        vec![
            vec!["a", "the value of `make()`"],
            vec!["a", "the value of `make()`", "the value of `ctx.p().await`"],
        ]
    );
}

#[test]
fn signature_errors() {
    let e = errors(quote! {
        fn f<T>(&self, x: &str) -> impl Sized {}
    });
    for needle in [
        "requires an `async fn`",
        "cannot be generic",
        "cannot take `self`",
        "must be owned",
        "`impl Trait` cannot be stored",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
    let e = errors(quote!(
        async fn f(n: u32) {}
    ));
    assert!(
        e.contains("the first parameter of a `#[durable]` fn must be the context"),
        "{e}"
    );
}

#[test]
fn attribute_arguments() {
    let cx = Ctxt::new();
    let args = crate::args::parse(
        &cx,
        quote!(name = "orders", codec = json, crate = ::my::path),
    );
    assert!(cx.check().is_ok());
    assert_eq!(args.name.unwrap().value(), "orders");
    assert_eq!(args.codec, crate::args::CodecArg::Json);
    assert_eq!(
        args.krate.map(|p| quote!(#p).to_string()),
        Some(":: my :: path".into())
    );

    let cx = Ctxt::new();
    crate::args::parse(&cx, quote!(nme = "x", codec = yaml, name = ""));
    let e = cx.check().unwrap_err();
    let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].contains("unknown `#[durable]` argument `nme`"));
    assert!(all[1].contains("unknown codec `yaml`"));
    assert!(all[2].contains("cannot be empty"));
}

#[test]
fn fingerprint_ignores_whitespace_and_sees_code_and_frames() {
    let a = fingerprint(quote! {
        async fn f(ctx: Ctx, n: u32) -> u32 { let a = n; ctx.p().await; a }
    });
    let b: TokenStream =
        "async fn f(ctx: Ctx, n: u32) -> u32 {\n    let a = n;\n\n    ctx.p().await;\n    a\n}"
            .parse()
            .unwrap();
    assert_eq!(a, fingerprint(b));
    let c = fingerprint(quote! {
        async fn f(ctx: Ctx, n: u32) -> u32 { let a = n; ctx.p().await; a + 1 }
    });
    assert_ne!(a, c);
}

#[test]
fn expansions_are_valid_rust() {
    let shapes = [
        quote! {
            pub async fn order(ctx: Ctx, order: Order) -> Result<Receipt, E> {
                let inventory = ctx.step("reserve", || reserve(&order.items)).await?;
                let payment = ctx.step("charge", || charge(order.amount)).retry(p()).await?;
                Ok(Receipt { order_id: order.id, payment, inventory })
            }
        },
        quote! {
            async fn shapes(ctx: Ctx, n: u32) -> u32 {
                let v = 'b: {
                    for i in 0..n {
                        if ctx.p(i).await? > 3 { break 'b i; }
                        if i == 2 { continue; }
                    }
                    0
                };
                let w = loop {
                    match ctx.q().await {
                        Some(x) if x > v => break x,
                        Some(_) => continue,
                        None => return 0,
                    }
                };
                while let Some(x) = ctx.r().await { if x { break } }
                v + w
            }
        },
        quote! {
            async fn nothing(_ctx: Ctx) {}
        },
    ];
    for shape in shapes {
        let out = crate::expand::durable(TokenStream::new(), shape.clone());
        let text = out.to_string();
        assert!(
            !text.contains("compile_error"),
            "{}",
            expansion(TokenStream::new(), shape)
        );
        if let Err(e) = syn::parse2::<syn::File>(out) {
            panic!("{e}:\n{}", expansion(TokenStream::new(), shape));
        }
    }
}

#[test]
fn odd_inputs_expand_without_panicking() {
    let inputs = [
        quote!(
            async fn empty(_: Ctx) {}
        ),
        quote!(
            async fn only_items(ctx: Ctx) {
                fn f() {}
                struct S;
            }
        ),
        quote!(
            async fn mutable(mut ctx: Ctx) -> u8 {
                ctx = ctx.clone();
                ctx.p().await
            }
        ),
        quote!(
            async fn raw(ctx: Ctx, r#type: u8) -> u8 {
                ctx.p().await;
                r#type
            }
        ),
        quote!(
            async fn forever(ctx: Ctx) {
                loop {
                    ctx.sleep(d()).await;
                }
            }
        ),
        quote!(
            async fn forever_value(ctx: Ctx) -> u32 {
                let x = loop {
                    ctx.p().await;
                };
                x
            }
        ),
        quote!(
            async fn nested(ctx: Ctx) {
                #[durable]
                async fn inner(ctx: Ctx) {
                    ctx.p().await;
                }
                ctx.q().await;
            }
        ),
        quote!(
            async fn labels(ctx: Ctx) {
                'a: loop {
                    'b: {
                        ctx.p().await;
                        break 'b;
                    }
                    break 'a;
                }
            }
        ),
        quote!(
            async fn unit_if(ctx: Ctx, c: bool) {
                if c {
                    ctx.p().await;
                }
            }
        ),
        quote!(
            async fn tail_match(ctx: Ctx, c: u8) -> u8 {
                match c {
                    0 => ctx.p().await,
                    n => n,
                }
            }
        ),
        quote!(
            async fn diverging_arm(ctx: Ctx, c: u8) -> u8 {
                let v = match c {
                    0 => return 1,
                    _ => ctx.p().await,
                };
                v
            }
        ),
        quote!(
            async fn else_if(ctx: Ctx, c: u8) -> u8 {
                if c == 0 {
                    1
                } else if c == 1 {
                    ctx.p().await
                } else {
                    3
                }
            }
        ),
        quote!(
            async fn while_let_tail(ctx: Ctx, mut v: Vec<u8>) {
                while let Some(x) = v.pop() {
                    ctx.p(x).await;
                }
            }
        ),
        quote!(
            async fn cast_index(ctx: Ctx, v: Vec<u8>) -> u64 {
                ctx.p().await[0] as u64 + v.len() as u64
            }
        ),
        quote!(
            async fn range(ctx: Ctx) -> u8 {
                let mut t = 0;
                for i in 0..ctx.p().await {
                    t += i;
                }
                t
            }
        ),
        quote!(
            async fn no_ctx_use(ctx: Ctx, x: u8) -> u8 {
                let c = ctx;
                x
            }
        ),
        quote!(
            async fn where_clause(ctx: Ctx)
            where
                u8: Copy,
            {
            }
        ),
        quote!(
            fn not_even_async() {}
        ),
        quote!(
            async fn weird_ctx((a, b): Ctx) {}
        ),
        quote!(
            struct NotAFunction;
        ),
    ];
    for input in inputs {
        let out = crate::expand::durable(TokenStream::new(), input.clone());
        assert!(
            syn::parse2::<syn::File>(out.clone()).is_ok(),
            "{input}\n=>\n{}",
            expansion(TokenStream::new(), input.clone())
        );
    }
}

/// The `fn __calls` a workflow emits, as text (`None` when it emits none).
fn calls(item: TokenStream) -> Option<String> {
    let text = crate::expand::durable(TokenStream::new(), item).to_string();
    let at = text.find("fn __calls")?;
    Some(text[at..].split("collect").next().unwrap().to_owned())
}

#[test]
fn workflows_called_by_path_are_registered_with_the_caller_once() {
    let called = calls(quote! {
        async fn f(ctx: Ctx, n: u64) -> u64 {
            let a = ctx.call(helper, n).await.unwrap();
            let b = ctx.call(billing::charge, n).await.unwrap();
            let c = ctx.call(helper, n + 1).await.unwrap();
            let d = ctx.invoke(report, "id".to_string(), n).await.unwrap();
            a + b + c + d
        }
    })
    .expect("a list of called workflows");
    assert_eq!(called.matches("Probe (helper)").count(), 1, "{called}");
    assert!(called.contains("Probe (billing :: charge)"), "{called}");
    assert!(called.contains("Probe (report)"), "{called}");
}

#[test]
fn map_bodies_branches_and_calls_in_closures_are_registered() {
    let called = calls(quote! {
        async fn f(ctx: Ctx, n: Vec<u64>) -> u64 {
            let a = ctx.map("a", n.clone(), resize).max_in_flight(2).await;
            let b = ctx.map("b", n.clone(), |x: u64| ctx.call(shrink, x)).await;
            let c = ctx.parallel("c", vec![Branch::call(crop, 1), Branch::step(|| async { Ok(2) })]).await;
            let d = ctx.map("d", n, |x: u64| async move { Ok(x) }).await;
            0
        }
    })
    .expect("a list of called workflows");
    for name in ["resize", "shrink", "crop"] {
        assert!(
            called.contains(&format!("Probe ({name})")),
            "{name}: {called}"
        );
    }
    assert_eq!(called.matches("Probe (").count(), 3, "{called}");
}

#[test]
fn a_workflow_named_by_a_local_is_not_registered() {
    // A local (here a parameter and a `let`) cannot be named from the `Workflow` impl.
    assert_eq!(
        calls(quote! {
            async fn f(ctx: Ctx, helper: u64) -> u64 {
                let other = 1;
                ctx.call(helper, 1).await.unwrap() + ctx.call(other, 2).await.unwrap()
            }
        }),
        None
    );
    assert_eq!(
        calls(quote! {
            async fn f(ctx: Ctx) -> u64 {
                ctx.step_infallible("s", || async { 1 }).await
            }
        }),
        None
    );
}
