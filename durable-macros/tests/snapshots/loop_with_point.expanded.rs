#[doc(hidden)]
#[allow(non_snake_case)]
mod sum_items {
    /// The workflow type of [`sum_items`](fn@super::sum_items), as named in `Handle<sum_items::Workflow>`.
    #[derive(
        ::core::clone::Clone,
        ::core::marker::Copy,
        ::core::fmt::Debug,
        ::core::default::Default
    )]
    pub(super) struct Workflow;
}
/// The `#[durable]` workflow `sum_items`: pass it to `EngineBuilder::register` and `Engine::start`.
#[allow(dead_code)]
fn sum_items(_: ::durable_core::__private_v1::Select) -> sum_items::Workflow {
    sum_items::Workflow
}
const _: () = {
    use ::durable_core::__private_v1 as __durable_private;
    #[diagnostic::on_unimplemented(
        message = "the workflow input `items` is stored with the execution, but `{T}` cannot be serialized",
        label = "stored with the execution when it starts",
        note = "workflow inputs are stored with the execution, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
        note = "derive `serde::Serialize` and `serde::Deserialize` for your types; pass owned data, not borrows, connections or other handles",
    )]
    pub trait StorableInputItemsOfSumItems<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableInputItemsOfSumItems<T>
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
    pub trait StorableOutputOfSumItems<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableOutputOfSumItems<T>
    for __durable_private::DurableFrame {
        type Stored = T;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T> {
            __durable_private::SlotCodec::new()
        }
    }
    impl ::durable_core::Workflow for sum_items::Workflow {
        type Input = <__durable_private::DurableFrame as StorableInputItemsOfSumItems<
            Vec<u32>,
        >>::Stored;
        type Output = <__durable_private::DurableFrame as StorableOutputOfSumItems<
            u64,
        >>::Stored;
        const NAME: &'static str = "sum_items";
        const FINGERPRINT: u64 = 17872494763222596338u64;
        const LOWERING_FORMAT: u32 = 1u32;
        const CODEC: ::durable_core::Codec = ::durable_core::Codec::Json;
        const POINTS: &'static [__durable_private::PointInfo] = &[
            __durable_private::PointInfo {
                id: 0,
                label: "ctx.step_infallible(\"add\", ..)",
                line: 8,
                locals: &["total", "for item", "item"],
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
                let mut __durable_s4 = __durable_private::Slot::new();
                let __durable_c2 = {
                    #[diagnostic::on_unimplemented(
                        message = "`total` is held across the durable point `ctx.step_infallible(\"add\", ..)` at line 8, but `{T}` cannot be serialized",
                        label = "used after the durable point, so it is saved in the frame",
                        note = "a local used after a durable point is saved in the frame, so its type must implement `Serialize + DeserializeOwned + Send + 'static`",
                        note = "a borrow (`&T`, a lock guard, an iterator over a borrowed collection) cannot be saved: clone or own the data before the point (`.clone()`, `.to_owned()`, `.collect::<Vec<_>>()`), or end the borrow before it",
                        note = "for your own types, derive `serde::Serialize` and `serde::Deserialize`; connections, files and other handles cannot be saved: open them again after the point",
                    )]
                    trait SaveableTotalInSumItems<T> {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T>;
                    }
                    #[diagnostic::do_not_recommend]
                    impl<T: __durable_private::Saveable> SaveableTotalInSumItems<T>
                    for __durable_private::DurableFrame {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T> {
                            __durable_private::SlotCodec::new()
                        }
                    }
                    <__durable_private::DurableFrame as SaveableTotalInSumItems<
                        _,
                    >>::__durable_codec(&__durable_s2)
                };
                let __durable_c3 = {
                    #[diagnostic::on_unimplemented(
                        message = "the `for item` loop keeps its remaining items across the durable point `ctx.step_infallible(\"add\", ..)` at line 8, but its items, `{T}`, cannot be serialized",
                        label = "the items this loop has not reached yet are saved in the frame",
                        note = "a `for` loop with a durable point in its body saves its remaining items, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
                        note = "a loop over borrowed items (`for x in &v`, `v.iter()`) cannot cross a durable point: loop over owned items (`for x in v.clone()`) or over indices (`for i in 0..v.len()`)",
                    )]
                    trait SaveableForItemItemsInSumItems<T> {
                        fn __durable_codec<It: __durable_private::LoopIter<Item = T>>(
                            _: &__durable_private::Slot<It>,
                        ) -> __durable_private::SlotCodec<It>;
                    }
                    #[diagnostic::do_not_recommend]
                    impl<
                        T: __durable_private::Saveable,
                    > SaveableForItemItemsInSumItems<T>
                    for __durable_private::DurableFrame {
                        fn __durable_codec<It: __durable_private::LoopIter<Item = T>>(
                            _: &__durable_private::Slot<It>,
                        ) -> __durable_private::SlotCodec<It> {
                            <It as __durable_private::LoopIter>::codec()
                        }
                    }
                    <__durable_private::DurableFrame as SaveableForItemItemsInSumItems<
                        _,
                    >>::__durable_codec(&__durable_s3)
                };
                let __durable_c4 = {
                    #[diagnostic::on_unimplemented(
                        message = "`item` is used by the durable operation `ctx.step_infallible(\"add\", ..)` at line 8, so it is saved in the frame, but `{T}` cannot be serialized",
                        label = "captured by the operation, which runs again when the execution resumes",
                        note = "a durable operation (its step body, its arguments) runs again when a pending point resumes after a restart, so the locals it uses are saved with the point and must implement `Serialize + DeserializeOwned + Send + 'static`",
                        note = "own the value before the point (`.clone()`, `.to_owned()`), or borrow inside the step body from a local that can be saved: `ctx.step(.., || f(&order.items[0].sku))`",
                    )]
                    trait SaveableItemInSumItems<T> {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T>;
                    }
                    #[diagnostic::do_not_recommend]
                    impl<T: __durable_private::Saveable> SaveableItemInSumItems<T>
                    for __durable_private::DurableFrame {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T> {
                            __durable_private::SlotCodec::new()
                        }
                    }
                    <__durable_private::DurableFrame as SaveableItemInSumItems<
                        _,
                    >>::__durable_codec(&__durable_s4)
                };
                let __durable_o0 = __durable_private::OutcomeType::new();
                let (mut __durable_block, mut __durable_bytes, __durable_inspect) = __durable_private::start(
                    __durable_entry,
                );
                __durable_private::output::<
                    <Self as ::durable_core::Workflow>::Output,
                >(
                    '__durable_machine: loop {
                        match __durable_block {
                            0 => {
                                let items = match __durable_private::input::<
                                    Self,
                                >(&mut __durable_bytes) {
                                    ::core::result::Result::Ok(__durable_i) => __durable_i,
                                    ::core::result::Result::Err(__durable_i) => {
                                        match __durable_private::halt(&__durable_stop, __durable_i)
                                            .await
                                        {}
                                    }
                                };
                                let mut total = 0u64;
                                let _ = &mut total;
                                let __durable_i3 = {
                                    use __durable_private::{ViaRange as _, ViaCollect as _};
                                    (&__durable_private::ForSource::new(items)).durable_iter()
                                };
                                #[allow(unreachable_code)]
                                {
                                    __durable_s2.put(total);
                                    __durable_s3.put(__durable_i3);
                                    __durable_block = 1;
                                    continue '__durable_machine;
                                }
                            }
                            1 => {
                                let mut __durable_i3 = __durable_s3.take();
                                match ::core::iter::Iterator::next(&mut __durable_i3) {
                                    ::core::option::Option::Some(item) => {
                                        __durable_s3.put(__durable_i3);
                                        __durable_s4.put(item);
                                        __durable_block = 2;
                                        continue '__durable_machine;
                                    }
                                    ::core::option::Option::None => {
                                        __durable_block = 3;
                                        continue '__durable_machine;
                                    }
                                }
                            }
                            2 => {
                                let __durable_entered = __durable_private::enter(
                                        &__durable_stop,
                                        &__durable_ctx,
                                        0,
                                        |__durable_w| {
                                            __durable_w.local(__durable_c2, &__durable_s2, "total");
                                            __durable_w.local(__durable_c3, &__durable_s3, "for item");
                                            __durable_w.local(__durable_c4, &__durable_s4, "item");
                                        },
                                    )
                                    .await;
                                let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                                #[allow(unused_mut)]
                                let mut total = __durable_s2.take();
                                {
                                    let item = __durable_s4.take();
                                    {
                                        total
                                            += __durable_private::outcome(
                                                    &__durable_stop,
                                                    __durable_o0,
                                                    __durable_entered,
                                                    |__durable_r| __durable_private::run(
                                                        (::core::clone::Clone::clone(&ctx))
                                                            .step_infallible(
                                                                "add",
                                                                move || async move { u64::from(item) },
                                                            ),
                                                        __durable_r,
                                                    ),
                                                )
                                                .await;
                                    }
                                }
                                #[allow(unreachable_code)]
                                {
                                    __durable_s2.put(total);
                                    __durable_block = 1;
                                    continue '__durable_machine;
                                }
                            }
                            3 => {
                                #[allow(unused_mut)]
                                let mut total = __durable_s2.take();
                                break '__durable_machine total;
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
                                                    .local(__durable_c2, &mut __durable_s2, "total");
                                                __durable_fr
                                                    .local(__durable_c3, &mut __durable_s3, "for item");
                                                __durable_fr.local(__durable_c4, &mut __durable_s4, "item");
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
