#[doc(hidden)]
#[allow(non_snake_case)]
mod welcome {
    /// The workflow type of [`welcome`](fn@super::welcome), as named in `Handle<welcome::Workflow>`.
    #[derive(
        ::core::clone::Clone,
        ::core::marker::Copy,
        ::core::fmt::Debug,
        ::core::default::Default
    )]
    pub(super) struct Workflow;
}
/// The `#[durable]` workflow `welcome`: pass it to `EngineBuilder::register` and `Engine::start`.
#[allow(dead_code)]
fn welcome(_: ::durable_core::__private_v1::Select) -> welcome::Workflow {
    welcome::Workflow
}
const _: () = {
    use ::durable_core::__private_v1 as __durable_private;
    #[diagnostic::on_unimplemented(
        message = "the workflow input `user` is stored with the execution, but `{T}` cannot be serialized",
        label = "stored with the execution when it starts",
        note = "workflow inputs are stored with the execution, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
        note = "derive `serde::Serialize` and `serde::Deserialize` for your types; pass owned data, not borrows, connections or other handles",
    )]
    pub trait StorableInputUserOfWelcome<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableInputUserOfWelcome<T>
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
    pub trait StorableOutputOfWelcome<T> {
        type Stored;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T>;
    }
    #[diagnostic::do_not_recommend]
    impl<T: __durable_private::Saveable> StorableOutputOfWelcome<T>
    for __durable_private::DurableFrame {
        type Stored = T;
        fn __durable_codec(
            _: &__durable_private::Slot<T>,
        ) -> __durable_private::SlotCodec<T> {
            __durable_private::SlotCodec::new()
        }
    }
    #[automatically_derived]
    impl ::durable_core::Workflow for welcome::Workflow {
        type Input = <__durable_private::DurableFrame as StorableInputUserOfWelcome<
            String,
        >>::Stored;
        type Output = <__durable_private::DurableFrame as StorableOutputOfWelcome<
            Result<u32, StepError<String>>,
        >>::Stored;
        const NAME: &'static str = "welcome";
        const FINGERPRINT: u64 = 18403777809217705576u64;
        const CODEC: ::durable_core::Codec = ::durable_core::Codec::Bincode;
        const POINTS: &'static [__durable_private::PointInfo] = &[
            __durable_private::PointInfo {
                id: 0,
                label: "ctx.step(\"create-account\", ..)",
                line: 6,
                locals: &["user"],
            },
            __durable_private::PointInfo {
                id: 1,
                label: "ctx.step(\"send-email\", ..).retry(..)",
                line: 9,
                locals: &["user", "id"],
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
                let mut __durable_s1 = __durable_private::Slot::new();
                let mut __durable_s2 = __durable_private::Slot::new();
                let __durable_c1 = <__durable_private::DurableFrame as StorableInputUserOfWelcome<
                    _,
                >>::__durable_codec(&__durable_s1);
                let __durable_c2 = {
                    #[diagnostic::on_unimplemented(
                        message = "`id` is held across the durable point `ctx.step(\"send-email\", ..).retry(..)` at line 9, but `{T}` cannot be serialized",
                        label = "used after the durable point, so it is saved in the frame",
                        note = "a local used after a durable point is saved in the frame, so its type must implement `Serialize + DeserializeOwned + Send + 'static`",
                        note = "a borrow (`&T`, a lock guard, an iterator over a borrowed collection) cannot be saved: clone or own the data before the point (`.clone()`, `.to_owned()`, `.collect::<Vec<_>>()`), or end the borrow before it",
                        note = "for your own types, derive `serde::Serialize` and `serde::Deserialize`; connections, files and other handles cannot be saved: open them again after the point",
                    )]
                    trait SaveableIdInWelcome<T> {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T>;
                    }
                    #[diagnostic::do_not_recommend]
                    impl<T: __durable_private::Saveable> SaveableIdInWelcome<T>
                    for __durable_private::DurableFrame {
                        fn __durable_codec(
                            _: &__durable_private::Slot<T>,
                        ) -> __durable_private::SlotCodec<T> {
                            __durable_private::SlotCodec::new()
                        }
                    }
                    <__durable_private::DurableFrame as SaveableIdInWelcome<
                        _,
                    >>::__durable_codec(&__durable_s2)
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
                            let user = __durable_private::decode_workflow_input::<
                                Self,
                            >(&__durable_input)?;
                            {
                                __durable_s1.put(user);
                                __durable_block = 1;
                                continue '__durable_machine;
                            }
                        }
                        1 => {
                            let __durable_entered = __durable_private::enter(
                                &__durable_ctx,
                                0,
                                |__durable_w| {
                                    __durable_c1.encode(__durable_w, &__durable_s1, "user")?;
                                    ::core::result::Result::Ok(())
                                },
                            )?;
                            let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                            let __durable_v = match __durable_entered {
                                __durable_private::Entered::Recorded(__durable_b) => {
                                    __durable_private::recorded(&__durable_b)?
                                }
                                __durable_private::Entered::Run(__durable_r) => {
                                    __durable_private::run(
                                            (::core::clone::Clone::clone(&ctx))
                                                .step("create-account", || async { Ok::<u32, String>(42) }),
                                            __durable_r,
                                        )
                                        .await?
                                }
                            };
                            let id = (match __durable_private::Try::branch(__durable_v) {
                                ::core::ops::ControlFlow::Continue(__durable_x) => {
                                    __durable_x
                                }
                                ::core::ops::ControlFlow::Break(__durable_e) => {
                                    break '__durable_machine __durable_private::FromResidual::from_residual(
                                        __durable_e,
                                    );
                                }
                            });
                            {
                                __durable_s2.put(id);
                                __durable_block = 2;
                                continue '__durable_machine;
                            }
                        }
                        2 => {
                            let __durable_entered = __durable_private::enter(
                                &__durable_ctx,
                                1,
                                |__durable_w| {
                                    __durable_c1.encode(__durable_w, &__durable_s1, "user")?;
                                    __durable_c2.encode(__durable_w, &__durable_s2, "id")?;
                                    ::core::result::Result::Ok(())
                                },
                            )?;
                            let ctx = ::core::clone::Clone::clone(&__durable_ctx);
                            let mut user = __durable_s1.take();
                            let mut id = __durable_s2.take();
                            let __durable_v = match __durable_entered {
                                __durable_private::Entered::Recorded(__durable_b) => {
                                    __durable_private::recorded(&__durable_b)?
                                }
                                __durable_private::Entered::Run(__durable_r) => {
                                    __durable_private::run(
                                            (::core::clone::Clone::clone(&ctx))
                                                .step("send-email", || async { Ok::<(), String>(()) })
                                                .retry(RetryPolicy::exponential().max_attempts(5)),
                                            __durable_r,
                                        )
                                        .await?
                                }
                            };
                            (match __durable_private::Try::branch(__durable_v) {
                                ::core::ops::ControlFlow::Continue(__durable_x) => {
                                    __durable_x
                                }
                                ::core::ops::ControlFlow::Break(__durable_e) => {
                                    break '__durable_machine __durable_private::FromResidual::from_residual(
                                        __durable_e,
                                    );
                                }
                            });
                            println!("welcomed {user}");
                            break '__durable_machine Ok(id);
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
                                    __durable_c1
                                        .decode(&mut __durable_fr, &mut __durable_s1, "user")?;
                                    __durable_private::frame_done(__durable_fr)?;
                                    if __durable_inspect {
                                        return ::core::result::Result::Err(
                                            __durable_private::Interrupt::Inspected(
                                                ::std::vec![
                                                    ("user", __durable_c1.json(& __durable_s1, "user") ?)
                                                ],
                                            ),
                                        );
                                    }
                                    __durable_block = 1;
                                }
                                1 => {
                                    __durable_c1
                                        .decode(&mut __durable_fr, &mut __durable_s1, "user")?;
                                    __durable_c2
                                        .decode(&mut __durable_fr, &mut __durable_s2, "id")?;
                                    __durable_private::frame_done(__durable_fr)?;
                                    if __durable_inspect {
                                        return ::core::result::Result::Err(
                                            __durable_private::Interrupt::Inspected(
                                                ::std::vec![
                                                    ("user", __durable_c1.json(& __durable_s1, "user") ?),
                                                    ("id", __durable_c2.json(& __durable_s2, "id") ?)
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
