#[doc(hidden)]
#[allow(non_snake_case)]
mod checkout {
    /// The workflow type of [`checkout`](fn@super::checkout), as named in `Handle<checkout::Workflow>`.
    #[derive(
        ::core::clone::Clone,
        ::core::marker::Copy,
        ::core::fmt::Debug,
        ::core::default::Default
    )]
    pub(super) struct Workflow;
}
/// The `#[durable]` workflow `checkout`: pass it to `EngineBuilder::register` and `Engine::start`.
#[allow(dead_code)]
fn checkout(_: ::durable_core::__private_v1::Select) -> checkout::Workflow {
    checkout::Workflow
}
const _: () = {
    use ::durable_core::__private_v1 as __durable_private;
    #[diagnostic::on_unimplemented(
        message = "the workflow input `cents` is stored with the execution, but `{T}` cannot be serialized",
        label = "stored with the execution when it starts",
        note = "workflow inputs are stored with the execution, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
        note = "derive `serde::Serialize` and `serde::Deserialize` for your types; pass owned data, not borrows, connections or other handles",
    )]
    pub trait StorableInputCentsOfCheckout<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableInputCentsOfCheckout<T>
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
    pub trait StorableOutputOfCheckout<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableOutputOfCheckout<T>
    for __durable_private::DurableFrame {
        type Stored = T;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T> {
            __durable_private::SlotCodec::new()
        }
    }
    impl ::durable_core::Workflow for checkout::Workflow {
        type Input = <__durable_private::DurableFrame as StorableInputCentsOfCheckout<
            u64,
        >>::Stored;
        type Output = <__durable_private::DurableFrame as StorableOutputOfCheckout<
            Result<u64, ChildError>,
        >>::Stored;
        const NAME: &'static str = "checkout";
        const FINGERPRINT: u64 = 10314420810844130486u64;
        const LOWERING_FORMAT: u32 = 1u32;
        const CODEC: ::durable_core::Codec = ::durable_core::Codec::Bincode;
        const POINTS: &'static [__durable_private::PointInfo] = &[
            __durable_private::PointInfo {
                id: 0,
                label: "ctx.call(..)",
                line: 5,
                locals: &["cents"],
            },
            __durable_private::PointInfo {
                id: 1,
                label: "ctx.call(..)",
                line: 6,
                locals: &["cents", "receipt"],
            },
        ];
        fn __calls() -> ::std::vec::Vec<__durable_private::Called> {
            #[allow(unused_imports)]
            use __durable_private::{ProbeOther as _, ProbeWorkflow as _};
            [
                (&&__durable_private::Probe(billing::charge)).workflow_called(),
                (&&__durable_private::Probe(charge)).workflow_called(),
            ]
                .into_iter()
                .flatten()
                .collect()
        }
        fn __machine(
            __durable_ctx: ::durable_core::Ctx,
            __durable_entry: __durable_private::Entry,
        ) -> __durable_private::Machine<<Self as ::durable_core::Workflow>::Output> {
            let __durable_ctx: Ctx = __durable_ctx;
            __durable_private::machine(move |__durable_stop| async move {
                let mut __durable_s1 = __durable_private::Slot::new();
                let mut __durable_s2 = __durable_private::Slot::new();
                let __durable_c1 = <__durable_private::DurableFrame as StorableInputCentsOfCheckout<
                    _,
                >>::__durable_codec(&__durable_s1);
                let __durable_c2 = {
                    #[diagnostic::on_unimplemented(
                        message = "`receipt` is held across the durable point `ctx.call(..)` at line 6, but `{T}` cannot be serialized",
                        label = "used after the durable point, so it is saved in the frame",
                        note = "a local used after a durable point is saved in the frame, so its type must implement `Serialize + DeserializeOwned + Send + 'static`",
                        note = "a borrow (`&T`, a lock guard, an iterator over a borrowed collection) cannot be saved: clone or own the data before the point (`.clone()`, `.to_owned()`, `.collect::<Vec<_>>()`), or end the borrow before it",
                        note = "for your own types, derive `serde::Serialize` and `serde::Deserialize`; connections, files and other handles cannot be saved: open them again after the point",
                    )]
                    trait SaveableReceiptInCheckout<T> {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T>;
                    }
                    #[diagnostic::do_not_recommend]
                    impl<T: __durable_private::Saveable> SaveableReceiptInCheckout<T>
                    for __durable_private::DurableFrame {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T> {
                            __durable_private::SlotCodec::new()
                        }
                    }
                    <__durable_private::DurableFrame as SaveableReceiptInCheckout<
                        _,
                    >>::__durable_codec(&__durable_s2)
                };
                let __durable_o0 = __durable_private::OutcomeType::new();
                let __durable_o1 = __durable_private::OutcomeType::new();
                let (mut __durable_block, mut __durable_bytes, __durable_inspect) = __durable_private::start(
                    __durable_entry,
                );
                __durable_private::output::<
                    <Self as ::durable_core::Workflow>::Output,
                >(
                    '__durable_machine: loop {
                        match __durable_block {
                            0 => {
                                let cents = match __durable_private::input::<
                                    Self,
                                >(&mut __durable_bytes) {
                                    ::core::result::Result::Ok(__durable_i) => __durable_i,
                                    ::core::result::Result::Err(__durable_i) => {
                                        match __durable_private::halt(&__durable_stop, __durable_i)
                                            .await
                                        {}
                                    }
                                };
                                #[allow(unreachable_code)]
                                {
                                    __durable_s1.put(cents);
                                    __durable_block = 1;
                                    continue '__durable_machine;
                                }
                            }
                            1 => {
                                let __durable_entered = __durable_private::enter(
                                        &__durable_stop,
                                        &__durable_ctx,
                                        0,
                                        |__durable_w| {
                                            __durable_w.local(__durable_c1, &__durable_s1, "cents");
                                        },
                                    )
                                    .await;
                                let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                                let cents = __durable_s1.take();
                                let receipt = __durable_private::outcome(
                                        &__durable_stop,
                                        __durable_o0,
                                        __durable_entered,
                                        |__durable_r| __durable_private::run(
                                            (::core::clone::Clone::clone(&ctx))
                                                .call(billing::charge, cents),
                                            __durable_r,
                                        ),
                                    )
                                    .await?;
                                #[allow(unreachable_code)]
                                {
                                    __durable_s1.put(cents);
                                    __durable_s2.put(receipt);
                                    __durable_block = 2;
                                    continue '__durable_machine;
                                }
                            }
                            2 => {
                                let __durable_entered = __durable_private::enter(
                                        &__durable_stop,
                                        &__durable_ctx,
                                        1,
                                        |__durable_w| {
                                            __durable_w.local(__durable_c1, &__durable_s1, "cents");
                                            __durable_w.local(__durable_c2, &__durable_s2, "receipt");
                                        },
                                    )
                                    .await;
                                let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                                let cents = __durable_s1.take();
                                let receipt = __durable_s2.take();
                                let total = __durable_private::outcome(
                                        &__durable_stop,
                                        __durable_o1,
                                        __durable_entered,
                                        |__durable_r| __durable_private::run(
                                            (::core::clone::Clone::clone(&ctx)).call(charge, cents + 1),
                                            __durable_r,
                                        ),
                                    )
                                    .await?;
                                break '__durable_machine Ok(
                                    receipt.unwrap_or(0) + total.unwrap_or(0),
                                );
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
                                                    .local(__durable_c1, &mut __durable_s1, "cents");
                                                1
                                            }
                                            1 => {
                                                __durable_fr.outcome(__durable_o1);
                                                __durable_fr
                                                    .local(__durable_c1, &mut __durable_s1, "cents");
                                                __durable_fr
                                                    .local(__durable_c2, &mut __durable_s2, "receipt");
                                                2
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
