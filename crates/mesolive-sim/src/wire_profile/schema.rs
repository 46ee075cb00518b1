//! What the simulator knows of MesoLive's types, written from the API document (its own
//! reading, not the daemon's): which fields hold enums, decimals, times or dictionaries, the
//! enum members in the order the document lists them, and the argument model of every method
//! (API §3), which strict binding checks arguments against.

/// Fields whose value is a dictionary: its keys are data (leg names, ids, variable names), so
/// they are never renamed and get no extra fields; its values are walked like any value.
const DICTIONARIES: &[&str] = &[
    "LegGroups",
    "LegGroupQtys",
    "LegGroupPrices",
    "LegGroupGreeks",
    "LegGroupPnLs",
    "LegPrices",
    "LegGreeks",
    "LegPnLs",
    "SelectedLegs",
    "PositionLegs",
    "OrderLegs",
    "Vars",
    "ValidationErrors",
];

/// Dictionaries whose values are `Decimal` (`Vars: dict[str, Decimal]`).
const DECIMAL_DICTIONARIES: &[&str] = &["Vars"];

/// Fields typed `Decimal` in the API's models (§2–§4).
const DECIMALS: &[&str] = &[
    "Bid",
    "Ask",
    "Last",
    "Mark",
    "Realized",
    "Qty",
    "CumQty",
    "Strike",
    "Multiplier",
    "AvgEntryPrice",
    "AvgFillPrice",
    "LastFillPrice",
    "LimitPrice",
    "StopPrice",
    "FillPrice",
    "FilledQty",
    "RemainingQty",
    "RealizedPnL",
    "QtyMultiplier",
    "NetLiquidationValue",
    "MaintenanceMarginReq",
    "Cash",
    "UserSetRealizedPnL",
    "TrackedRealizedPnL",
];

/// Enum types and their members in the order API §5.1 lists them (the API documents no
/// values, so a numeric form uses these positions). Types whose members are UNKNOWN list the
/// names the simulator uses.
const ENUMS: &[(&str, &[&str])] = &[
    (
        "StatusCode",
        &[
            "Success",
            "DuplicateRequest",
            "Conflict",
            "NotFound",
            "BadRequest",
            "ValidationError",
            "Unauthorized",
            "Forbidden",
            "Timeout",
            "InternalError",
        ],
    ),
    (
        "IdempotencyRecordStatus",
        &["Processing", "Completed", "Failed"],
    ),
    (
        "PreparationStatus",
        &[
            "Pending",
            "Queued",
            "Running",
            "InProgress",
            "Completed",
            "Failed",
            "Cancelled",
        ],
    ),
    (
        "PositionStatus",
        &["Created", "Closed", "Adjusted", "RealizedPnLChanged"],
    ),
    (
        "LegStatus",
        &[
            "Created",
            "Closed",
            "Adjusted",
            "QtyChanged",
            "RealizedPnLChanged",
        ],
    ),
    ("LivePositionState", &["Open", "Closed"]),
    ("SignalState", &["On", "Off"]),
    ("ErrorState", &["Raised", "Cleared"]),
    (
        "OrderState",
        &[
            "Pending",
            "Submitted",
            "Working",
            "PartiallyFilled",
            "Filled",
            "Cancelled",
            "Rejected",
            "Expired",
        ],
    ),
    ("OrderType", &["Market", "Limit", "Stop", "StopLimit"]),
    ("TimeInForce", &["Day", "Gtc"]),
    (
        "PositionAdjustmentOperation",
        &["AddLegs", "RemoveLegs", "MoveLeg", "UpdateVars"],
    ),
    (
        "IdempotencyOperation",
        &[
            "StartPreparePositionEntry",
            "StartPreparePositionExit",
            "StartPreparePositionAdjustment",
            "CancelPreparePositionEntry",
            "CancelPreparePositionExit",
            "CancelPreparePositionAdjustment",
            "SendOrder",
            "CancelOrder",
            "ApplyPaperFills",
        ],
    ),
    (
        "LiveLegSelectionConstraint",
        &["None", "FullyUnique", "UniqueInPosition"],
    ),
    (
        "MesoContractType",
        &["Stock", "Index", "Options", "Futures", "FuturesOptions"],
    ),
    ("MesoOptionType", &["Call", "Put"]),
    ("BrokerType", &["IBKR", "TastyTrade", "Paper"]),
    ("AgentStatus", &["Connected", "Disconnected"]),
    ("AgentConnector", &["IBKR", "TastyTrade", "MesoLivePaper"]),
    (
        "LiveDataInclude",
        &["None", "Prices", "Greeks", "PnL", "All"],
    ),
    (
        "LiveQuoteFields",
        &["None", "Bid", "Ask", "Last", "Mark", "All"],
    ),
];

/// The enum types a field may hold, most likely first (the same name serves several models).
fn enum_types(field: &str) -> &'static [&'static str] {
    match field {
        "State" => &[
            "SignalState",
            "OrderState",
            "LivePositionState",
            "ErrorState",
        ],
        "Status" => &[
            "PreparationStatus",
            "IdempotencyRecordStatus",
            "PositionStatus",
            "LegStatus",
            "AgentStatus",
        ],
        "JobStatus" => &["PreparationStatus"],
        "ResponseStatus" => &["StatusCode"],
        "OrderType" => &["OrderType"],
        "TimeInForce" => &["TimeInForce"],
        "Operation" => &["PositionAdjustmentOperation", "IdempotencyOperation"],
        "ContractType" => &["MesoContractType"],
        "OptionType" => &["MesoOptionType"],
        "BrokerType" => &["BrokerType"],
        "Connector" => &["AgentConnector"],
        "LegSelectionConstraint" => &["LiveLegSelectionConstraint"],
        _ => &[],
    }
}

fn members(enum_type: &str) -> &'static [&'static str] {
    ENUMS
        .iter()
        .find(|(name, _)| *name == enum_type)
        .map_or(&[], |(_, members)| members)
}

/// Whether `field` holds an enum member (a field of one of the API's models).
pub(crate) fn is_enum(field: &str) -> bool {
    !enum_types(field).is_empty()
}

/// The position of `member` in the first of `field`'s enum types that has it (`None`: no
/// enum type of that field has such a member).
pub(crate) fn enum_number(field: &str, member: &str) -> Option<i64> {
    enum_types(field).iter().find_map(|enum_type| {
        members(enum_type)
            .iter()
            .position(|m| m.eq_ignore_ascii_case(member))
            .and_then(|index| i64::try_from(index).ok())
    })
}

/// The position of a `StatusCode` member.
pub(crate) fn status_number(member: &str) -> Option<i64> {
    enum_number("ResponseStatus", member)
}

/// Whether `field` holds a `Decimal`.
pub(crate) fn is_decimal(field: &str) -> bool {
    DECIMALS.contains(&field)
}

/// Whether `field` holds a `datetime` (the API's names: `…Time`, `…At`, `Expiration`,
/// `LastUpdated`).
pub(crate) fn is_timestamp(field: &str) -> bool {
    field.ends_with("Time")
        || field.ends_with("At")
        || matches!(field, "Expiration" | "LastUpdated" | "LastSnapshotUtc")
}

/// Whether `field` holds a dictionary (keys are data).
pub(crate) fn is_dictionary(field: &str) -> bool {
    DICTIONARIES.contains(&field)
}

/// Whether `field` is a dictionary of decimals.
pub(crate) fn is_decimal_dictionary(field: &str) -> bool {
    DECIMAL_DICTIONARIES.contains(&field)
}

/// The type of one argument field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `int`.
    Int,
    /// `Decimal`.
    Decimal,
    /// `str` (also `UUID`, `DataProviderType` whose members are unknown: taken as text).
    Text,
    /// A member of the named enum type.
    Enum(&'static str),
    /// A flags value of the named enum type (`All`, `"Prices, Greeks"`).
    Flags(&'static str),
    /// `list[int]`.
    IntList,
    /// `list[str]`.
    TextList,
    /// A nested model.
    Object(&'static [Field]),
}

impl Kind {
    /// Whether the .NET type is a value type (`null` binds only when declared nullable).
    pub(crate) fn is_value_type(self) -> bool {
        matches!(
            self,
            Kind::Int | Kind::Decimal | Kind::Enum(_) | Kind::Flags(_)
        )
    }

    /// The members of an enum or flags type.
    pub(crate) fn members(self) -> &'static [&'static str] {
        match self {
            Kind::Enum(name) | Kind::Flags(name) => members(name),
            _ => &[],
        }
    }
}

/// One field of an argument model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// PascalCase, as documented.
    pub name: &'static str,
    pub kind: Kind,
    /// Declared nullable (`Null: Yes`, or `T?`).
    pub nullable: bool,
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        nullable: false,
    }
}

const fn nullable(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        nullable: true,
    }
}

const PAGE: [Field; 2] = [
    nullable("Limit", Kind::Int),
    nullable("ContinuationToken", Kind::Text),
];

/// `LegGroupOrder` (model not recovered; API §3.1.2's INFERRED contents).
const LEG_GROUP_ORDER: &[Field] = &[
    field("OrderType", Kind::Enum("OrderType")),
    field("TimeInForce", Kind::Enum("TimeInForce")),
    nullable("LimitPrice", Kind::Decimal),
    nullable("StopPrice", Kind::Decimal),
    field("LegNames", Kind::TextList),
];

/// `LiveUnderlying` (model not recovered; INFERRED: a symbol).
const UNDERLYING: &[Field] = &[field("Symbol", Kind::Text)];

const POSITION_DATA: &[Field] = &[
    field("PositionId", Kind::Int),
    field("PriceFields", Kind::Flags("LiveQuoteFields")),
    field("GreekFields", Kind::Flags("LiveQuoteFields")),
    field("PnlFields", Kind::Flags("LiveQuoteFields")),
    field("IncludePosition", Kind::Flags("LiveDataInclude")),
    field("IncludeLegs", Kind::Flags("LiveDataInclude")),
    field("IncludeLegGroups", Kind::Flags("LiveDataInclude")),
    nullable("Provider", Kind::Text),
];

const UNDERLYING_DATA: &[Field] = &[
    field("Symbol", Kind::Text),
    field("Underlying", Kind::Object(UNDERLYING)),
    field("PriceFields", Kind::Flags("LiveQuoteFields")),
    field("GreekFields", Kind::Flags("LiveQuoteFields")),
    nullable("Provider", Kind::Text),
];

const JOB: &[Field] = &[field("JobId", Kind::Text)];
const CANCEL_JOB: &[Field] = &[
    field("JobId", Kind::Text),
    field("IdempotencyKey", Kind::Text),
];

/// The argument model of `method` (API §3: FACT models, and the fields the document names as
/// probable for the INFERRED ones); `None` for a method the simulator does not serve.
pub(crate) fn arguments(method: &str) -> Option<&'static [Field]> {
    const EMPTY: &[Field] = &[];
    const LIST_ACCOUNTS: &[Field] = &PAGE;
    const LIST_STRATEGIES: &[Field] = &[
        nullable("ActiveOnAccounts", Kind::TextList),
        PAGE[0],
        PAGE[1],
    ];
    const LIST_POSITIONS: &[Field] = &[
        nullable("LiveStrategyId", Kind::Int),
        nullable("LiveExecPlanId", Kind::Int),
        nullable("BrokerAccountId", Kind::Text),
        PAGE[0],
        PAGE[1],
    ];
    const LIST_LEGS: &[Field] = &[
        nullable("LivePositionId", Kind::Int),
        nullable("BrokerAccountId", Kind::Text),
        PAGE[0],
        PAGE[1],
    ];
    const LIST_ORDERS: &[Field] = &[
        nullable("ExecPlanId", Kind::Int),
        nullable("BrokerAccountId", Kind::Text),
        PAGE[0],
        PAGE[1],
    ];
    const PREPARE_ENTRY: &[Field] = &[
        field("IdempotencyKey", Kind::Text),
        field("PositionName", Kind::Text),
        field("StrategyId", Kind::Int),
        field("BrokerAccountId", Kind::Text),
        field(
            "LegSelectionConstraint",
            Kind::Enum("LiveLegSelectionConstraint"),
        ),
        field("Underlying", Kind::Object(UNDERLYING)),
        nullable("DataProvider", Kind::Text),
    ];
    const PREPARE_EXIT: &[Field] = &[
        field("IdempotencyKey", Kind::Text),
        field("PositionId", Kind::Int),
        nullable("DataProvider", Kind::Text),
    ];
    const PREPARE_ADJUSTMENT: &[Field] = &[
        field("IdempotencyKey", Kind::Text),
        field("PositionId", Kind::Int),
        field("Operation", Kind::Enum("PositionAdjustmentOperation")),
        field("Condition", Kind::Text),
        nullable(
            "LegSelectionConstraint",
            Kind::Enum("LiveLegSelectionConstraint"),
        ),
        nullable("DataProvider", Kind::Text),
    ];
    const SEND_ORDER: &[Field] = &[
        field("IdempotencyKey", Kind::Text),
        nullable("ReplacesOrder", Kind::Int),
        field("BrokerAccountId", Kind::Text),
        field("ExecPlanId", Kind::Int),
        nullable("QtyMultiplier", Kind::Decimal),
        field("LegGroupId", Kind::Int),
        field("LegGroupOrder", Kind::Object(LEG_GROUP_ORDER)),
    ];
    const CANCEL_ORDER: &[Field] = &[
        field("IdempotencyKey", Kind::Text),
        field("OrderId", Kind::Int),
        nullable("BrokerAccountId", Kind::Text),
    ];
    // ApplyPaperFillsArgs (INFERRED): the document expects per-leg prices; this model takes
    // one price for the group, which is what a server with a group price would declare.
    const PAPER_FILLS: &[Field] = &[
        field("IdempotencyKey", Kind::Text),
        field("BrokerAccountId", Kind::Text),
        field("ExecPlanId", Kind::Int),
        field("LegGroupId", Kind::Int),
        field("FillPrice", Kind::Decimal),
        nullable("QtyMultiplier", Kind::Decimal),
    ];
    const STRATEGIES: &[Field] = &[nullable("Strategies", Kind::IntList)];
    const EVENTS_SINCE: &[Field] = &[
        field("AfterEventSeqId", Kind::Int),
        nullable("Limit", Kind::Int),
        nullable("ContinuationToken", Kind::Text),
    ];
    const ACCOUNT: &[Field] = &[field("BrokerAccountId", Kind::Text)];
    const STRATEGY: &[Field] = &[field("StrategyId", Kind::Int)];
    const POSITION: &[Field] = &[field("PositionId", Kind::Int)];
    const LEGS: &[Field] = &[field("LegIds", Kind::IntList)];
    const RECORD: &[Field] = &[field("IdempotencyKey", Kind::Text)];
    let model: &'static [Field] = match method {
        "ListAgents" | "GetLatestEventSeqId" => EMPTY,
        "ListAccounts" => LIST_ACCOUNTS,
        "GetAccount" => ACCOUNT,
        "ListStrategies" => LIST_STRATEGIES,
        "GetStrategy" => STRATEGY,
        "ListPositions" => LIST_POSITIONS,
        "GetPosition" => POSITION,
        "ListLegs" => LIST_LEGS,
        "GetLegs" => LEGS,
        "ListOrders" => LIST_ORDERS,
        "GetIdempotencyRecord" => RECORD,
        "SendOrder" => SEND_ORDER,
        "CancelOrder" => CANCEL_ORDER,
        "ApplyPaperFills" => PAPER_FILLS,
        "StartPreparePositionEntry" => PREPARE_ENTRY,
        "StartPreparePositionExit" => PREPARE_EXIT,
        "StartPreparePositionAdjustment" => PREPARE_ADJUSTMENT,
        "GetPreparePositionEntryStatus"
        | "GetPreparePositionExitStatus"
        | "GetPreparePositionAdjustmentStatus" => JOB,
        "CancelPreparePositionEntry"
        | "CancelPreparePositionExit"
        | "CancelPreparePositionAdjustment" => CANCEL_JOB,
        "GetPositionSnapshot" | "StreamPositionData" => POSITION_DATA,
        "GetUnderlyingSnapshot" | "StreamUnderlyingData" => UNDERLYING_DATA,
        "SubscribeToStrategies" | "UnsubscribeFromStrategies" => STRATEGIES,
        "GetEventsSince" => EVENTS_SINCE,
        _ => return None,
    };
    Some(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_positions_follow_the_document() {
        assert_eq!(enum_number("State", "Off"), Some(1));
        assert_eq!(enum_number("State", "Filled"), Some(4));
        assert_eq!(enum_number("Status", "Completed"), Some(4));
        assert_eq!(enum_number("Status", "RealizedPnLChanged"), Some(3));
        assert_eq!(status_number("NotFound"), Some(3));
        assert_eq!(enum_number("Symbol", "SPX"), None);
        assert!(is_enum("OrderType") && !is_enum("Symbol"));
    }

    #[test]
    fn field_kinds() {
        assert!(is_decimal("LimitPrice") && !is_decimal("LegGroupId"));
        assert!(is_timestamp("EventTime") && is_timestamp("CreatedAt"));
        assert!(!is_timestamp("AdjustmentTimeOk"));
        assert!(is_dictionary("LegGroups") && is_decimal_dictionary("Vars"));
        let send = arguments("SendOrder").unwrap();
        assert!(send.iter().any(|f| f.name == "QtyMultiplier" && f.nullable));
        assert!(arguments("NoSuchMethod").is_none());
    }
}
