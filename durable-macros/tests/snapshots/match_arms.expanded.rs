#[doc(hidden)]
#[allow(non_snake_case)]
mod route_order {
    /// The workflow type of [`route_order`](fn@super::route_order), as named in `Handle<route_order::Workflow>`.
    #[derive(
        ::core::clone::Clone,
        ::core::marker::Copy,
        ::core::fmt::Debug,
        ::core::default::Default
    )]
    pub(super) struct Workflow;
}
/// The `#[durable]` workflow `route_order`: pass it to `EngineBuilder::register` and `Engine::start`.
#[allow(dead_code)]
fn route_order(_: ::durable_core::__private_v1::Select) -> route_order::Workflow {
    route_order::Workflow
}
const _: () = {
    use ::durable_core::__private_v1 as __durable_private;
    #[diagnostic::on_unimplemented(
        message = "the workflow input `kind` is stored with the execution, but `{T}` cannot be serialized",
        label = "stored with the execution when it starts",
        note = "workflow inputs are stored with the execution, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
        note = "derive `serde::Serialize` and `serde::Deserialize` for your types; pass owned data, not borrows, connections or other handles",
    )]
    pub trait StorableInputKindOfRouteOrder<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableInputKindOfRouteOrder<T>
    for __durable_private::DurableFrame {
        type Stored = T;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T> {
            __durable_private::SlotCodec::new()
        }
    }
    #[diagnostic::on_unimplemented(
        message = "the workflow input `amount` is stored with the execution, but `{T}` cannot be serialized",
        label = "stored with the execution when it starts",
        note = "workflow inputs are stored with the execution, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
        note = "derive `serde::Serialize` and `serde::Deserialize` for your types; pass owned data, not borrows, connections or other handles",
    )]
    pub trait StorableInputAmountOfRouteOrder<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableInputAmountOfRouteOrder<T>
    for __durable_private::DurableFrame {
        type Stored = T;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T> {
            __durable_private::SlotCodec::new()
        }
    }
    #[diagnostic::on_unimplemented(
        message = "the workflow output is stored with the execution, but `{T}` cannot be serialized",
        label = "stored with the execution when it finishes",
        note = "the workflow output is stored with the execution, so it must implement `Serialize + DeserializeOwned + Send + 'static`",
        note = "derive `serde::Serialize` and `serde::Deserialize` for your types; pass owned data, not borrows, connections or other handles",
    )]
    pub trait StorableOutputOfRouteOrder<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableOutputOfRouteOrder<T>
    for __durable_private::DurableFrame {
        type Stored = T;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T> {
            __durable_private::SlotCodec::new()
        }
    }
    #[automatically_derived]
    impl ::durable_core::Workflow for route_order::Workflow {
        type Input = (
            <__durable_private::DurableFrame as StorableInputKindOfRouteOrder<
                u8,
            >>::Stored,
            <__durable_private::DurableFrame as StorableInputAmountOfRouteOrder<
                u32,
            >>::Stored,
        );
        type Output = <__durable_private::DurableFrame as StorableOutputOfRouteOrder<
            u32,
        >>::Stored;
        const NAME: &'static str = "route";
        const FINGERPRINT: u64 = 4324336918007160514u64;
        const CODEC: ::durable_core::Codec = ::durable_core::Codec::Bincode;
        const POINTS: &'static [__durable_private::PointInfo] = &[
            __durable_private::PointInfo {
                id: 0,
                label: "ctx.step_infallible(\"express\", ..)",
                line: 6,
                locals: &["amount"],
            },
            __durable_private::PointInfo {
                id: 1,
                label: "ctx.step_infallible(\"quote\", ..)",
                line: 8,
                locals: &["amount"],
            },
            __durable_private::PointInfo {
                id: 2,
                label: "ctx.sleep(..)",
                line: 12,
                locals: &["amount", "fee"],
            },
        ];
        #[allow(
            unused_mut,
            unreachable_code,
            unused_parens,
            unused_braces,
            irrefutable_let_patterns,
            unreachable_patterns,
            clippy::never_loop,
            clippy::diverging_sub_expression,
            clippy::let_unit_value,
            clippy::unnecessary_semicolon
        )]
        fn __machine(
            __durable_ctx: ::durable_core::Ctx,
            __durable_entry: __durable_private::Entry,
        ) -> __durable_private::Machine<<Self as ::durable_core::Workflow>::Output> {
            let __durable_ctx: Ctx = __durable_ctx;
            __durable_private::machine(async move {
                let mut __durable_s2 = __durable_private::Slot::new();
                let mut __durable_s3 = __durable_private::Slot::new();
                let mut __durable_s5 = __durable_private::Slot::new();
                let __durable_c2 = <__durable_private::DurableFrame as StorableInputAmountOfRouteOrder<
                    _,
                >>::__durable_codec(&__durable_s2);
                let __durable_c5 = {
                    #[diagnostic::on_unimplemented(
                        message = "`fee` is held across the durable point `ctx.sleep(..)` at line 12, but `{T}` cannot be serialized",
                        label = "used after the durable point, so it is saved in the frame",
                        note = "a local used after a durable point is saved in the frame, so its type must implement `Serialize + DeserializeOwned + Send + 'static`",
                        note = "a borrow (`&T`, a lock guard, an iterator over a borrowed collection) cannot be saved: clone or own the data before the point (`.clone()`, `.to_owned()`, `.collect::<Vec<_>>()`), or end the borrow before it",
                        note = "for your own types, derive `serde::Serialize` and `serde::Deserialize`; connections, files and other handles cannot be saved: open them again after the point",
                    )]
                    trait SaveableFeeInRouteOrder<T> {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T>;
                    }
                    #[diagnostic::do_not_recommend]
                    impl<T: __durable_private::Saveable> SaveableFeeInRouteOrder<T>
                    for __durable_private::DurableFrame {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T> {
                            __durable_private::SlotCodec::new()
                        }
                    }
                    <__durable_private::DurableFrame as SaveableFeeInRouteOrder<
                        _,
                    >>::__durable_codec(&__durable_s5)
                };
                let (mut __durable_block, mut __durable_bytes, __durable_inspect) = match __durable_entry {
                    __durable_private::Entry::Start { input: __durable_in } => {
                        (0u32, ::core::option::Option::Some(__durable_in), false)
                    }
                    __durable_private::Entry::Resume { frame: __durable_fr } => {
                        (
                            ::core::primitive::u32::MAX,
                            ::core::option::Option::Some(__durable_fr),
                            false,
                        )
                    }
                    __durable_private::Entry::Inspect { frame: __durable_fr } => {
                        (
                            ::core::primitive::u32::MAX,
                            ::core::option::Option::Some(__durable_fr),
                            true,
                        )
                    }
                };
                let __durable_out: <Self as ::durable_core::Workflow>::Output = '__durable_machine: loop {
                    match __durable_block {
                        0 => {
                            let __durable_input = match ::core::option::Option::take(
                                &mut __durable_bytes,
                            ) {
                                ::core::option::Option::Some(__durable_b) => __durable_b,
                                ::core::option::Option::None => {
                                    ::core::unreachable!("durable: internal error: no input")
                                }
                            };
                            let (kind, amount) = __durable_private::decode_workflow_input::<
                                Self,
                            >(&__durable_input)?;
                            match kind {
                                0 => {
                                    {
                                        __durable_s3.put(0);
                                    }
                                    {
                                        __durable_s2.put(amount);
                                        __durable_block = 3;
                                        continue '__durable_machine;
                                    }
                                }
                                1 => {
                                    __durable_s2.put(amount);
                                    __durable_block = 1;
                                    continue '__durable_machine;
                                }
                                _ => {
                                    __durable_s2.put(amount);
                                    __durable_block = 2;
                                    continue '__durable_machine;
                                }
                            }
                        }
                        1 => {
                            let __durable_entered = __durable_private::enter(
                                &__durable_ctx,
                                0,
                                |__durable_w| {
                                    __durable_c2.encode(__durable_w, &__durable_s2, "amount")?;
                                    ::core::result::Result::Ok(())
                                },
                            )?;
                            let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                            let mut amount = __durable_s2.take();
                            {
                                let __durable_v = match __durable_entered {
                                    __durable_private::Entered::Recorded(__durable_b) => {
                                        __durable_private::recorded(&__durable_b)?
                                    }
                                    __durable_private::Entered::Run(__durable_r) => {
                                        __durable_private::run(
                                                (::core::clone::Clone::clone(&ctx))
                                                    .step_infallible(
                                                        "express",
                                                        move || async move { amount / 10 },
                                                    ),
                                                __durable_r,
                                            )
                                            .await?
                                    }
                                };
                                __durable_s3.put(__durable_v);
                            }
                            {
                                __durable_s2.put(amount);
                                __durable_block = 3;
                                continue '__durable_machine;
                            }
                        }
                        2 => {
                            let __durable_entered = __durable_private::enter(
                                &__durable_ctx,
                                1,
                                |__durable_w| {
                                    __durable_c2.encode(__durable_w, &__durable_s2, "amount")?;
                                    ::core::result::Result::Ok(())
                                },
                            )?;
                            let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                            let mut amount = __durable_s2.take();
                            {
                                {
                                    let __durable_v = match __durable_entered {
                                        __durable_private::Entered::Recorded(__durable_b) => {
                                            __durable_private::recorded(&__durable_b)?
                                        }
                                        __durable_private::Entered::Run(__durable_r) => {
                                            __durable_private::run(
                                                    (::core::clone::Clone::clone(&ctx))
                                                        .step_infallible("quote", || async { 5u32 }),
                                                    __durable_r,
                                                )
                                                .await?
                                        }
                                    };
                                    let base = __durable_v;
                                    __durable_s3.put(base + amount / 20);
                                }
                            }
                            {
                                __durable_s2.put(amount);
                                __durable_block = 3;
                                continue '__durable_machine;
                            }
                        }
                        3 => {
                            let fee = __durable_s3.take();
                            {
                                __durable_s5.put(fee);
                                __durable_block = 4;
                                continue '__durable_machine;
                            }
                        }
                        4 => {
                            let __durable_entered = __durable_private::enter(
                                &__durable_ctx,
                                2,
                                |__durable_w| {
                                    __durable_c2.encode(__durable_w, &__durable_s2, "amount")?;
                                    __durable_c5.encode(__durable_w, &__durable_s5, "fee")?;
                                    ::core::result::Result::Ok(())
                                },
                            )?;
                            let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                            let mut amount = __durable_s2.take();
                            let mut fee = __durable_s5.take();
                            let __durable_v = match __durable_entered {
                                __durable_private::Entered::Recorded(__durable_b) => {
                                    __durable_private::recorded(&__durable_b)?
                                }
                                __durable_private::Entered::Run(__durable_r) => {
                                    __durable_private::run(
                                            (::core::clone::Clone::clone(&ctx))
                                                .sleep(std::time::Duration::from_secs(60)),
                                            __durable_r,
                                        )
                                        .await?
                                }
                            };
                            __durable_v.ok();
                            break '__durable_machine amount + fee;
                        }
                        ::core::primitive::u32::MAX => {
                            let __durable_frame = match ::core::option::Option::take(
                                &mut __durable_bytes,
                            ) {
                                ::core::option::Option::Some(__durable_b) => __durable_b,
                                ::core::option::Option::None => {
                                    ::core::unreachable!("durable: internal error: no frame")
                                }
                            };
                            let mut __durable_fr = __durable_private::frame_reader(
                                &__durable_frame,
                            )?;
                            match __durable_fr.point() {
                                0 => {
                                    __durable_c2
                                        .decode(&mut __durable_fr, &mut __durable_s2, "amount")?;
                                    __durable_private::frame_done(__durable_fr)?;
                                    if __durable_inspect {
                                        return ::core::result::Result::Err(
                                            __durable_private::Interrupt::Inspected(
                                                ::std::vec![
                                                    ("amount", __durable_c2.json(& __durable_s2, "amount") ?)
                                                ],
                                            ),
                                        );
                                    }
                                    __durable_block = 1;
                                }
                                1 => {
                                    __durable_c2
                                        .decode(&mut __durable_fr, &mut __durable_s2, "amount")?;
                                    __durable_private::frame_done(__durable_fr)?;
                                    if __durable_inspect {
                                        return ::core::result::Result::Err(
                                            __durable_private::Interrupt::Inspected(
                                                ::std::vec![
                                                    ("amount", __durable_c2.json(& __durable_s2, "amount") ?)
                                                ],
                                            ),
                                        );
                                    }
                                    __durable_block = 2;
                                }
                                2 => {
                                    __durable_c2
                                        .decode(&mut __durable_fr, &mut __durable_s2, "amount")?;
                                    __durable_c5
                                        .decode(&mut __durable_fr, &mut __durable_s5, "fee")?;
                                    __durable_private::frame_done(__durable_fr)?;
                                    if __durable_inspect {
                                        return ::core::result::Result::Err(
                                            __durable_private::Interrupt::Inspected(
                                                ::std::vec![
                                                    ("amount", __durable_c2.json(& __durable_s2, "amount") ?),
                                                    ("fee", __durable_c5.json(& __durable_s5, "fee") ?)
                                                ],
                                            ),
                                        );
                                    }
                                    __durable_block = 4;
                                }
                                __durable_other => {
                                    return ::core::result::Result::Err(
                                        __durable_private::unknown_point(__durable_other),
                                    );
                                }
                            }
                        }
                        _ => {
                            ::core::unreachable!(
                                "durable: internal error: unknown block"
                            )
                        }
                    }
                };
                ::core::result::Result::Ok(__durable_out)
            })
        }
    }
};
