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
        const LOWERING_FORMAT: u32 = 1u32;
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
        fn __machine(
            __durable_ctx: ::durable_core::Ctx,
            __durable_entry: __durable_private::Entry,
        ) -> __durable_private::Machine<<Self as ::durable_core::Workflow>::Output> {
            let __durable_ctx: Ctx = __durable_ctx;
            __durable_private::machine(move |__durable_stop| async move {
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
                let __durable_o0 = __durable_private::OutcomeType::new();
                let __durable_o1 = __durable_private::OutcomeType::new();
                let __durable_o2 = __durable_private::OutcomeType::new();
                let (mut __durable_block, mut __durable_bytes, __durable_inspect) = __durable_private::start(
                    __durable_entry,
                );
                __durable_private::output::<
                    <Self as ::durable_core::Workflow>::Output,
                >(
                    '__durable_machine: loop {
                        match __durable_block {
                            0 => {
                                let (kind, amount) = match __durable_private::input::<
                                    Self,
                                >(&mut __durable_bytes) {
                                    ::core::result::Result::Ok(__durable_i) => __durable_i,
                                    ::core::result::Result::Err(__durable_i) => {
                                        match __durable_private::halt(&__durable_stop, __durable_i)
                                            .await
                                        {}
                                    }
                                };
                                match kind {
                                    0 => {
                                        {
                                            __durable_s3.put(0);
                                        }
                                        #[allow(unreachable_code)]
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
                                        &__durable_stop,
                                        &__durable_ctx,
                                        0,
                                        |__durable_w| {
                                            __durable_w.local(__durable_c2, &__durable_s2, "amount");
                                        },
                                    )
                                    .await;
                                let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                                let amount = __durable_s2.take();
                                {
                                    __durable_s3
                                        .put(
                                            __durable_private::outcome(
                                                    &__durable_stop,
                                                    __durable_o0,
                                                    __durable_entered,
                                                    |__durable_r| __durable_private::run(
                                                        (::core::clone::Clone::clone(&ctx))
                                                            .step_infallible(
                                                                "express",
                                                                move || async move { amount / 10 },
                                                            ),
                                                        __durable_r,
                                                    ),
                                                )
                                                .await,
                                        );
                                }
                                #[allow(unreachable_code)]
                                {
                                    __durable_s2.put(amount);
                                    __durable_block = 3;
                                    continue '__durable_machine;
                                }
                            }
                            2 => {
                                let __durable_entered = __durable_private::enter(
                                        &__durable_stop,
                                        &__durable_ctx,
                                        1,
                                        |__durable_w| {
                                            __durable_w.local(__durable_c2, &__durable_s2, "amount");
                                        },
                                    )
                                    .await;
                                let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                                let amount = __durable_s2.take();
                                {
                                    {
                                        let base = __durable_private::outcome(
                                                &__durable_stop,
                                                __durable_o1,
                                                __durable_entered,
                                                |__durable_r| __durable_private::run(
                                                    (::core::clone::Clone::clone(&ctx))
                                                        .step_infallible("quote", || async { 5u32 }),
                                                    __durable_r,
                                                ),
                                            )
                                            .await;
                                        __durable_s3.put(base + amount / 20);
                                    }
                                }
                                #[allow(unreachable_code)]
                                {
                                    __durable_s2.put(amount);
                                    __durable_block = 3;
                                    continue '__durable_machine;
                                }
                            }
                            3 => {
                                let fee = __durable_s3.take();
                                #[allow(unreachable_code)]
                                {
                                    __durable_s5.put(fee);
                                    __durable_block = 4;
                                    continue '__durable_machine;
                                }
                            }
                            4 => {
                                let __durable_entered = __durable_private::enter(
                                        &__durable_stop,
                                        &__durable_ctx,
                                        2,
                                        |__durable_w| {
                                            __durable_w.local(__durable_c2, &__durable_s2, "amount");
                                            __durable_w.local(__durable_c5, &__durable_s5, "fee");
                                        },
                                    )
                                    .await;
                                let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                                let amount = __durable_s2.take();
                                let fee = __durable_s5.take();
                                __durable_private::outcome(
                                        &__durable_stop,
                                        __durable_o2,
                                        __durable_entered,
                                        |__durable_r| __durable_private::run(
                                            (::core::clone::Clone::clone(&ctx))
                                                .sleep(std::time::Duration::from_secs(60)),
                                            __durable_r,
                                        ),
                                    )
                                    .await
                                    .ok();
                                break '__durable_machine amount + fee;
                            }
                            ::core::primitive::u32::MAX => {
                                __durable_block = __durable_private::resume(
                                        &__durable_stop,
                                        &mut __durable_bytes,
                                        __durable_inspect,
                                        |__durable_fr| match __durable_fr.point() {
                                            0 => {
                                                __durable_fr.outcome(__durable_o0);
                                                __durable_fr
                                                    .local(__durable_c2, &mut __durable_s2, "amount");
                                                1
                                            }
                                            1 => {
                                                __durable_fr.outcome(__durable_o1);
                                                __durable_fr
                                                    .local(__durable_c2, &mut __durable_s2, "amount");
                                                2
                                            }
                                            2 => {
                                                __durable_fr.outcome(__durable_o2);
                                                __durable_fr
                                                    .local(__durable_c2, &mut __durable_s2, "amount");
                                                __durable_fr.local(__durable_c5, &mut __durable_s5, "fee");
                                                4
                                            }
                                            _ => __durable_fr.unknown_point(),
                                        },
                                    )
                                    .await;
                            }
                            _ => {
                                break '__durable_machine __durable_private::unknown_block();
                            }
                        }
                    },
                )
            })
        }
    }
};
