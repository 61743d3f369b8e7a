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
    #[automatically_derived]
    impl ::durable_core::Workflow for sum_items::Workflow {
        type Input = <__durable_private::DurableFrame as StorableInputItemsOfSumItems<
            Vec<u32>,
        >>::Stored;
        type Output = <__durable_private::DurableFrame as StorableOutputOfSumItems<
            u64,
        >>::Stored;
        const NAME: &'static str = "sum_items";
        const FINGERPRINT: u64 = 17872494763222596338u64;
        const CODEC: ::durable_core::Codec = ::durable_core::Codec::Json;
        const POINTS: &'static [__durable_private::PointInfo] = &[
            __durable_private::PointInfo {
                id: 0,
                label: "ctx.step_infallible(\"add\", ..)",
                line: 8,
                locals: &["total", "for item", "item"],
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
                        message = "`item` is held across the durable point `ctx.step_infallible(\"add\", ..)` at line 8, but `{T}` cannot be serialized",
                        label = "used after the durable point, so it is saved in the frame",
                        note = "a local used after a durable point is saved in the frame, so its type must implement `Serialize + DeserializeOwned + Send + 'static`",
                        note = "a borrow (`&T`, a lock guard, an iterator over a borrowed collection) cannot be saved: clone or own the data before the point (`.clone()`, `.to_owned()`, `.collect::<Vec<_>>()`), or end the borrow before it",
                        note = "for your own types, derive `serde::Serialize` and `serde::Deserialize`; connections, files and other handles cannot be saved: open them again after the point",
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
                            let items = __durable_private::decode_workflow_input::<
                                Self,
                            >(&__durable_input)?;
                            let mut total = 0u64;
                            let __durable_i3 = {
                                use __durable_private::{ViaRange as _, ViaCollect as _};
                                (&__durable_private::ForSource::new(items)).durable_iter()
                            };
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
                                &__durable_ctx,
                                0,
                                |__durable_w| {
                                    __durable_c2.encode(__durable_w, &__durable_s2, "total")?;
                                    __durable_c3
                                        .encode(__durable_w, &__durable_s3, "for item")?;
                                    __durable_c4.encode(__durable_w, &__durable_s4, "item")?;
                                    ::core::result::Result::Ok(())
                                },
                            )?;
                            let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                            let mut total = __durable_s2.take();
                            {
                                let mut item = __durable_s4.take();
                                {
                                    let __durable_v = match __durable_entered {
                                        __durable_private::Entered::Recorded(__durable_b) => {
                                            __durable_private::recorded(&__durable_b)?
                                        }
                                        __durable_private::Entered::Run(__durable_r) => {
                                            __durable_private::run(
                                                    (::core::clone::Clone::clone(&ctx))
                                                        .step_infallible(
                                                            "add",
                                                            move || async move { u64::from(item) },
                                                        ),
                                                    __durable_r,
                                                )
                                                .await?
                                        }
                                    };
                                    total += __durable_v;
                                }
                            }
                            {
                                __durable_s2.put(total);
                                __durable_block = 1;
                                continue '__durable_machine;
                            }
                        }
                        3 => {
                            let mut total = __durable_s2.take();
                            break '__durable_machine total;
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
                                        .decode(&mut __durable_fr, &mut __durable_s2, "total")?;
                                    __durable_c3
                                        .decode(&mut __durable_fr, &mut __durable_s3, "for item")?;
                                    __durable_c4
                                        .decode(&mut __durable_fr, &mut __durable_s4, "item")?;
                                    __durable_private::frame_done(__durable_fr)?;
                                    if __durable_inspect {
                                        return ::core::result::Result::Err(
                                            __durable_private::Interrupt::Inspected(
                                                ::std::vec![
                                                    ("total", __durable_c2.json(& __durable_s2, "total") ?),
                                                    ("for item", __durable_c3.json(& __durable_s3, "for item")
                                                    ?), ("item", __durable_c4.json(& __durable_s4, "item") ?)
                                                ],
                                            ),
                                        );
                                    }
                                    __durable_block = 2;
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
