//! The wire dimensions the simulator can play, one enum per dimension, and [`Forms`]: one form
//! of each. Dimension ids and form names are those of `docs/inferred.md`; the first form of
//! every dimension is what the simulator did before profiles existed (the `default` profile).

/// Declares the dimension enums and the [`Forms`] struct holding one form of each.
macro_rules! dimensions {
    ($(
        $(#[$doc:meta])*
        $field:ident: $ty:ident = $id:literal {
            $( $(#[$form_doc:meta])* $variant:ident = $form:literal ),+ $(,)?
        }
    )+) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub enum $ty {
                $( $(#[$form_doc])* $variant ),+
            }

            impl $ty {
                /// Every form, today's first.
                pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

                /// The form's name in `docs/inferred.md`.
                pub fn name(self) -> &'static str {
                    match self {
                        $($ty::$variant => $form),+
                    }
                }

                /// The form named `name`.
                pub fn from_name(name: &str) -> Option<$ty> {
                    Self::ALL.iter().copied().find(|form| form.name() == name)
                }
            }

            impl Default for $ty {
                fn default() -> Self {
                    Self::ALL[0]
                }
            }
        )+

        /// One form per dimension: how the simulator reads and writes the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct Forms {
            $( $(#[$doc])* pub $field: $ty, )+
        }

        impl Forms {
            /// Every dimension id with its forms, in declaration order.
            pub const CATALOGUE: &'static [(&'static str, fn() -> Vec<&'static str>)] = &[
                $( ($id, || $ty::ALL.iter().map(|f| f.name()).collect()), )+
            ];

            /// `(dimension, form)` of every dimension, in declaration order.
            pub fn pairs(&self) -> Vec<(&'static str, &'static str)> {
                vec![$( ($id, self.$field.name()), )+]
            }

            /// Sets one dimension by its id and form name.
            pub fn set(&mut self, dimension: &str, form: &str) -> Result<(), String> {
                match dimension {
                    $( $id => {
                        self.$field = $ty::from_name(form).ok_or_else(|| format!(
                            "{dimension} has no form '{form}' (forms: {})",
                            $ty::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
                        ))?;
                        Ok(())
                    } )+
                    other => Err(format!("no wire dimension '{other}'")),
                }
            }

            /// Draws every dimension from its forms, skipping `excluded(dimension, form)`; a
            /// dimension whose every form is excluded keeps today's form.
            pub fn draw(
                rng: &mut fastrand::Rng,
                excluded: impl Fn(&str, &str) -> bool,
            ) -> Forms {
                Forms {
                    $( $field: {
                        let allowed: Vec<$ty> = $ty::ALL
                            .iter()
                            .copied()
                            .filter(|form| !excluded($id, form.name()))
                            .collect();
                        if allowed.is_empty() {
                            $ty::default()
                        } else {
                            allowed[rng.usize(..allowed.len())]
                        }
                    }, )+
                }
            }
        }
    };
}

dimensions! {
    /// Where the hubs accept the bearer token (API §1.2).
    auth_token_location: AuthTokenLocation = "auth_token_location" {
        /// The header or the `access_token` query parameter.
        Either = "either",
        /// Only `Authorization: Bearer`.
        Header = "header",
        /// Only `access_token` in the query of the upgrade.
        Query = "query",
    }
    /// How many SignalR arguments a method binds (API §1.3.5).
    argument_arity: ArgumentArity = "argument_arity" {
        /// One args object per method (`[{}]` for methods without fields).
        OneObject = "one_object",
        /// Methods without fields take no argument: `[{}]` fails binding.
        ZeroArgs = "zero_args",
    }
    /// How strictly argument values bind to the method's argument model (API §1.3, §2.3).
    argument_binding: ArgumentBinding = "argument_binding" {
        /// Numbers and booleans also as text, any shape that reads.
        Lenient = "lenient",
        /// System.Text.Json's defaults: a string where the model says number (or the other way
        /// round) fails the whole invocation with ASP.NET Core's binding error.
        StrictStj = "strict_stj",
    }
    /// Property name casing out, and which casing binds in (API §1.3.9).
    property_casing: PropertyCasing = "property_casing" {
        /// PascalCase out, any casing in.
        Pascal = "pascal",
        /// camelCase out (SignalR's default policy), any casing in.
        Camel = "camel",
        /// camelCase out, and only camelCase names bind in.
        CamelStrict = "camel_strict",
    }
    /// Unknown fields: added by the server, and sent by the client (API §0, §4.1).
    extra_fields: ExtraFields = "extra_fields" {
        /// Unknown argument fields are ignored.
        OutboundIgnored = "outbound_ignored",
        /// Every object the server sends carries a field the API does not list.
        InboundExtra = "inbound_extra",
        /// An argument field the model does not have fails binding.
        OutboundRejected = "outbound_rejected",
    }
    /// Null members: written or left out, and bound into value types (API §0).
    null_vs_absent: NullVsAbsent = "null_vs_absent" {
        /// Null members are written as `null`.
        ExplicitNull = "explicit_null",
        /// Null members are left out (`WhenWritingNull`).
        OmittedNull = "omitted_null",
        /// A `null` for a non-nullable number in the argument model fails binding.
        NullIntoValueType = "null_into_value_type",
    }
    /// The envelope's payload field (API §2).
    envelope_data_field: EnvelopeDataField = "envelope_data_field" {
        /// `Data`.
        Data = "Data",
        /// `Payload`.
        Payload = "Payload",
        /// `Result`.
        Result = "Result",
        /// A name nobody guessed (`Response`).
        OtherName = "other_name",
    }
    /// The envelope's error fields (API §2, §2.1).
    envelope_error_fields: EnvelopeErrorFields = "envelope_error_fields" {
        /// `Message` and an `Error` object.
        MessageAndError = "message_and_error",
        /// `Message` only.
        MessageOnly = "message_only",
        /// `Error` as a string, no `Message`.
        ErrorAsString = "error_as_string",
    }
    /// How the envelope's `Status` is spelled (API §2.2, §5.0).
    status_code_spelling: StatusCodeSpelling = "status_code_spelling" {
        /// `"Success"`.
        Pascal = "pascal",
        /// `"success"`.
        Camel = "camel",
        /// `0`: the member's position (no values are documented).
        Numeric = "numeric",
    }
    /// How enum members travel, both ways (API §5.0).
    enum_encoding: EnumEncoding = "enum_encoding" {
        /// Member names.
        NamePascal = "name_pascal",
        /// camelCase member names.
        NameCamel = "name_camel",
        /// Integers (the member's position; no converter, so names fail binding).
        Numeric = "numeric",
    }
    /// Which flags values bind (API §5.0).
    flags_encoding: FlagsEncoding = "flags_encoding" {
        /// A member name such as `"All"` (lists too).
        AllName = "all_name",
        /// Member names and comma lists (`"Prices, Greeks"`).
        NameList = "name_list",
        /// Only integers.
        NumericOnly = "numeric_only",
    }
    /// How `datetime` values are written (API §0).
    timestamp_format: TimestampFormat = "timestamp_format" {
        /// `2024-05-01T14:30:00.123Z`.
        UtcZMillis = "utc_z_millis",
        /// `2024-05-01T14:30:00.1234567Z` (.NET's round-trip format).
        UtcZTicks = "utc_z_ticks",
        /// `2024-05-01T14:30:00.123+00:00`.
        Offset = "offset",
        /// `2024-05-01T14:30:00.123` (no offset).
        Unspecified = "unspecified",
    }
    /// How `Decimal` values are written (API §0).
    decimal_inbound: DecimalInbound = "decimal_inbound" {
        /// JSON strings (rust_decimal's default serde form).
        String = "string",
        /// JSON numbers.
        Number = "number",
    }
    /// Numbers written as strings (`JsonNumberHandling.WriteAsString`, API §0).
    integer_as_string: IntegerAsString = "integer_as_string" {
        /// JSON numbers.
        Number = "number",
        /// Every number as a JSON string.
        String = "string",
    }
    /// The shape of a paged list (API §3.1.3).
    page_wrapper: PageWrapper = "page_wrapper" {
        /// `{Items, ContinuationToken}`.
        ItemsToken = "items_token",
        /// `{Accounts|Strategies|…, ContinuationToken}`.
        NamedList = "named_list",
        /// A bare array: every item in one page.
        BareArray = "bare_array",
    }
    /// How a paged list says "last page" and spells its token (API §3.1.3).
    page_continuation: PageContinuation = "page_continuation" {
        /// `ContinuationToken: null` on the last page.
        NullToken = "null_token",
        /// No token on the last page.
        AbsentToken = "absent_token",
        /// `ContinuationToken: ""` on the last page.
        EmptyToken = "empty_token",
        /// `NextPageToken`.
        OtherTokenName = "other_token_name",
        /// `ContinuationToken: {"Offset": n}`.
        NonStringToken = "non_string_token",
    }
    /// Paging argument names (API §3.1.2).
    page_args: PageArgs = "page_args" {
        /// `Limit` and `ContinuationToken`.
        LimitToken = "limit_token",
        /// `PageSize`: `Limit` is ignored and the default page size applies.
        OtherNames = "other_names",
    }
    /// `GetEventsSince`'s sequence argument (API §3.3).
    history_args: HistoryArgs = "history_args" {
        /// Events strictly after `AfterEventSeqId`.
        AfterExclusive = "after_exclusive",
        /// Events from the given EventSeqId on (inclusive).
        SinceInclusive = "since_inclusive",
        /// `FromEventSeqId`: `AfterEventSeqId` is ignored and reads as 0.
        OtherName = "other_name",
    }
    /// The shape of a `GetEventsSince` page (API §3.3).
    history_page: HistoryPage = "history_page" {
        /// `{Events, ContinuationToken, HasMore}`.
        EventsTokenHasmore = "events_token_hasmore",
        /// `{Items, ContinuationToken}`.
        ItemsToken = "items_token",
        /// A bare array.
        BareArray = "bare_array",
        /// `{Events, NextEventSeqId}`.
        NextSeqOnly = "next_seq_only",
        /// A filtered server: the first page of a replay is empty but says `HasMore`.
        EmptyPageHasMore = "empty_page_has_more",
    }
    /// The shape of one history item (API §3.3).
    history_item_payload: HistoryItemPayload = "history_item_payload" {
        /// `{EventSeqId, EventId, EventType: "OnOrderUpdate", Payload: {…}}`.
        Wrapped = "wrapped",
        /// The payload as JSON text, the type as the model name.
        WrappedStringPayload = "wrapped_string_payload",
        /// The header beside `Type` and `Event`.
        HeaderOutside = "header_outside",
        /// The event's fields with `EventType` among them.
        FlatTyped = "flat_typed",
        /// The event's fields with `$type` (System.Text.Json polymorphism).
        DollarType = "dollar_type",
        /// `EventType` as an integer (the callback's position in API §4.1).
        NumericType = "numeric_type",
        /// The event's fields, no type at all.
        Untyped = "untyped",
    }
    /// `GetIdempotencyRecord` for a key the server never saw (API §6.1).
    idempotency_not_found: IdempotencyNotFound = "idempotency_not_found" {
        /// `Status: NotFound`.
        StatusNotFound = "status_not_found",
        /// `Status: Success`, `Data: null`.
        SuccessNullData = "success_null_data",
        /// `Status: Success`, no data field.
        SuccessNoData = "success_no_data",
        /// `Status: BadRequest`, `Error.Code: IdempotencyKeyNotFound`.
        OtherStatus = "other_status",
        /// A hub error (the method threw).
        HubError = "hub_error",
        /// `Status: Success`, `Data: {}`.
        EmptyRecord = "empty_record",
    }
    /// What `StartPreparePosition*` answers (API §3.1.1 rows 16, 19, 22).
    job_started_payload: JobStartedPayload = "job_started_payload" {
        /// `{"JobId": "…"}`.
        ObjectString = "object_string",
        /// `"…"`.
        BareString = "bare_string",
    }
    /// What `SendOrder` / `ApplyPaperFills` answer (API §3.1.1 rows 25, 27).
    execution_payload: ExecutionPayload = "execution_payload" {
        /// `{"LiveOrderIds": [901], "ExecPlanId": 55}`.
        LiveOrderIds = "live_order_ids",
        /// `{"OrderIds": [901]}`.
        OrderIds = "order_ids",
        /// `{"OrderId": 901}` (one order per call).
        OrderId = "order_id",
        /// `901`.
        BareNumber = "bare_number",
        /// `[901]`.
        BareArray = "bare_array",
        /// `null`: order ids only in later callbacks.
        Null = "null",
    }
    /// `AgentInfo` (model not recovered, API §3.1.4).
    agent_info_fields: AgentInfoFields = "agent_info_fields" {
        /// `{Name, Connector, Connected, LastSnapshotTime}`.
        InferredNames = "inferred_names",
        /// `{Provider, IsConnected, LastSnapshotUtc}`.
        OtherNames = "other_names",
        /// `Connector` as an integer.
        EnumNumberConnector = "enum_number_connector",
        /// `Connector` as an object.
        ObjectConnector = "object_connector",
    }
    /// How a missing `Provider` on underlying data is refused (API §3.2.1, §6.4).
    provider_required: ProviderRequired = "provider_required" {
        /// A validation envelope naming `Provider` (streams: an error with the same text).
        EnvelopeValidation = "envelope_validation",
        /// `Status: BadRequest` with a message (streams: an error with the same text).
        EnvelopeOtherStatus = "envelope_other_status",
        /// A hub error without detail, for snapshots and streams alike.
        HubError = "hub_error",
    }
    /// Underlying data arguments (API §3.2.3).
    underlying_data_args: UnderlyingDataArgs = "underlying_data_args" {
        /// `Symbol` (an `Underlying` object is read too).
        SymbolField = "symbol_field",
        /// Only `Underlying: {Symbol}`.
        UnderlyingObject = "underlying_object",
    }
    /// A Data Hub stream item (API §1.3.6, §3.2).
    stream_item_envelope: StreamItemEnvelope = "stream_item_envelope" {
        /// The model itself.
        Bare = "bare",
        /// The model inside a success envelope.
        Enveloped = "enveloped",
    }
    /// `LiveGreeks` (model not recovered, API §3.2.4).
    live_greeks_shape: LiveGreeksShape = "live_greeks_shape" {
        /// `{SnapshotTime, Delta, Gamma, Theta, Vega}`.
        Flat = "flat",
        /// One set per quote basis: `{SnapshotTime, Mark: {Delta…}, Bid: {…}}`.
        PerBasis = "per_basis",
        /// `{SnapshotTime, MarkDelta, MarkDeltaAgeMs, …}`.
        Prefixed = "prefixed",
    }
    /// The adjustment signal's `Condition` (model not recovered, API §4.3).
    condition_evaluation: ConditionEvaluation = "condition_evaluation" {
        /// `{"Name", "Statement", "Result"}`.
        ObjectName = "object_name",
        /// The condition id as a string.
        String = "string",
        /// `{"ConditionId", "Operation"}`.
        ObjectWithOperation = "object_with_operation",
        /// `{"Expression", "Value"}`: nothing that names it.
        ObjectUnrecognized = "object_unrecognized",
    }
    /// `OrderState` members (UNKNOWN, API §5.1).
    order_state_members: OrderStateMembers = "order_state_members" {
        /// `Working`, `Filled`, `Cancelled`.
        Inferred = "inferred",
        /// `Canceled`.
        CanceledSpelling = "canceled_spelling",
        /// `Done` for a filled order, `ApiCancelled` for a cancelled one.
        OtherTerminalNames = "other_terminal_names",
    }
    /// `PreparationStatus` members (PARTIAL, API §5.1).
    preparation_status_members: PreparationStatusMembers = "preparation_status_members" {
        /// `Running`, `Completed`, `Failed`, `Cancelled`.
        Inferred = "inferred",
        /// `Canceled`.
        CanceledSpelling = "canceled_spelling",
        /// `InProgress`, `Succeeded`, `Error`, `Aborted`.
        OtherNames = "other_names",
    }
    /// Callback names the API does not state (API §4.1).
    callback_names_inferred: CallbackNamesInferred = "callback_names_inferred" {
        /// `OnPositionEntryPreparationCompleted`, `OnAgentStatus`.
        Inferred = "inferred",
        /// The model names: `PositionEntryPreparationCompletedEvent`, `AgentStatusEvent`.
        ModelName = "model_name",
        /// `OnEntryPreparationCompleted`, `OnAgentStatusChanged`.
        OtherName = "other_name",
    }
    /// The arguments of a callback (API §1.3.7).
    callback_arguments: CallbackArguments = "callback_arguments" {
        /// `[event]`.
        SingleObject = "single_object",
        /// `[strategyId, event]`.
        ExtraLeadingArg = "extra_leading_arg",
        /// `["{…}"]`: the event as JSON text.
        JsonText = "json_text",
    }
}
