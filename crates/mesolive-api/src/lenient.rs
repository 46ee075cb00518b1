//! Lenient decoding of MesoLive payloads.
//!
//! The server's JSON casing is not documented (the docs show PascalCase; ASP.NET Core SignalR
//! defaults to camelCase), enum encodings are INFERRED, and more fields may exist than were
//! recovered. So every inbound payload goes through [`decode`]:
//!
//! * struct fields match case-insensitively (`EventSeqId`, `eventSeqId`, `eventseqid`), while
//!   dictionary keys (leg names, ids) are left exactly as sent;
//! * unknown fields are ignored;
//! * integers also come as text (`"EventSeqId":"42"`, a server writing numbers as strings);
//! * enums declared with [`lenient_enum!`](crate::lenient_enum) accept any casing and keep
//!   unknown members as `Unknown(text)`; an integer is refused with an error naming
//!   `enum_encoding=numeric`: the members' values were never documented, so reading one would
//!   be a guess.
//!
//! Outbound payloads are built in [`crate::wire`] (PascalCase, enum names as strings).

use serde::Deserializer;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::Value;

/// Decodes a payload into `T` with case-insensitive struct fields.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    decode_ref(&value)
}

/// [`decode`] from a borrowed payload: nothing is cloned but the strings `T` keeps, so a caller
/// that still needs the payload (the event pump keeps it for effects and quarantine) does not
/// copy it first.
pub fn decode_ref<T: DeserializeOwned>(value: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(Lenient(value))
}

/// A `serde_json::Value` whose structs match field names case-insensitively.
struct Lenient<'de>(&'de Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for Lenient<'de> {
    type Deserializer = Lenient<'de>;
    fn into_deserializer(self) -> Lenient<'de> {
        self
    }
}

impl<'de> Deserializer<'de> for Lenient<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(LenientMap::new(map, None)),
            Value::Array(items) => {
                let seq = items.iter().map(Lenient);
                visitor.visit_seq(de::value::SeqDeserializer::new(seq))
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match integer_text(self.0) {
            Some(Ok(n)) => visitor.visit_i64(n),
            Some(Err(())) => self.0.deserialize_any(visitor),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(LenientMap::new(map, Some(fields))),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i128 u8 u16 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// An integer written as text: `Some(Ok(n))` for `"42"`, `Some(Err(()))` for other text,
/// `None` for anything that is not text.
fn integer_text(value: &Value) -> Option<Result<i64, ()>> {
    let Value::String(text) = value else {
        return None;
    };
    Some(text.trim().parse::<i64>().map_err(drop))
}

/// Map access that renames keys to the struct's declared field names, ignoring case. A value
/// that fails to decode is reported with its key in front (`State: invalid type…`), so a
/// quarantined event says which field was wrong.
struct LenientMap<'de> {
    entries: serde_json::map::Iter<'de>,
    fields: Option<&'static [&'static str]>,
    pending: Option<(&'de str, &'de Value)>,
}

impl<'de> LenientMap<'de> {
    fn new(
        map: &'de serde_json::Map<String, Value>,
        fields: Option<&'static [&'static str]>,
    ) -> Self {
        LenientMap {
            entries: map.iter(),
            fields,
            pending: None,
        }
    }

    /// The declared field `key` matches (ignoring case), else `key` itself.
    fn canonical(&self, key: &'de str) -> &'de str {
        let Some(fields) = self.fields else {
            return key;
        };
        fields
            .iter()
            .find(|field| field.eq_ignore_ascii_case(key))
            .map_or(key, |field| field)
    }
}

impl<'de> MapAccess<'de> for LenientMap<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let key = self.canonical(key);
        self.pending = Some((key, value));
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (key, value) = self.pending.take().unwrap_or(("", &Value::Null));
        seed.deserialize(Lenient(value))
            .map_err(|error| de::Error::custom(format!("{key}: {error}")))
    }
}

/// Declares a MesoLive enum that decodes leniently and encodes as the member name.
///
/// ```
/// mesolive_api::lenient_enum! {
///     /// Whether a signal is raised.
///     pub enum Light { On, Off }
/// }
/// let on: Light = mesolive_api::lenient::decode(serde_json::json!("on")).unwrap();
/// assert_eq!(on, Light::On);
/// let odd: Light = mesolive_api::lenient::decode(serde_json::json!("Blinking")).unwrap();
/// assert_eq!(odd, Light::Unknown("Blinking".into()));
/// let numeric = mesolive_api::lenient::decode::<Light>(serde_json::json!(1));
/// assert!(numeric.unwrap_err().to_string().contains("enum_encoding=numeric"));
/// ```
#[macro_export]
macro_rules! lenient_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* #[allow(missing_docs)] $variant,)+
            /// A member this build does not know (its text as sent).
            Unknown(String),
        }

        impl $name {
            /// The text of a member this build does not know (`None` for a known member).
            pub fn unknown_name(&self) -> Option<&str> {
                match self {
                    $name::Unknown(text) => Some(text),
                    _ => None,
                }
            }

            /// The member name as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                    $name::Unknown(text) => text,
                }
            }

            /// Parses a member name, ignoring case; unknown names become `Unknown`.
            pub fn from_name(text: &str) -> Self {
                $(if text.eq_ignore_ascii_case(stringify!($variant)) {
                    return $name::$variant;
                })+
                $name::Unknown(text.to_owned())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                match <::serde_json::Value as ::serde::Deserialize>::deserialize(d)? {
                    ::serde_json::Value::String(text) => Ok($name::from_name(&text)),
                    ::serde_json::Value::Number(n) => Err(<D::Error as ::serde::de::Error>::custom(format!(
                        concat!(
                            "wire form not supported: enum_encoding=numeric (seen: ",
                            stringify!($name),
                            " {}); the members' integer values were never documented"
                        ),
                        n
                    ))),
                    other => Err(<D::Error as ::serde::de::Error>::custom(format!(
                        concat!("expected a ", stringify!($name), " name, got {}"),
                        other
                    ))),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        leg_id: i64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Outer {
        event_seq_id: Option<i64>,
        legs: HashMap<String, Inner>,
        list: Vec<Inner>,
        #[serde(default)]
        missing: Option<String>,
    }

    #[test]
    fn fields_match_any_case_but_map_keys_stay() {
        let v = json!({
            "eventSeqId": 7,
            "LEGS": {"shortPut": {"legId": 1}},
            "list": [{"LegId": 2}],
            "extra": true
        });
        let o: Outer = decode(v).unwrap();
        assert_eq!(o.event_seq_id, Some(7));
        assert_eq!(o.legs["shortPut"], Inner { leg_id: 1 });
        assert_eq!(o.list, vec![Inner { leg_id: 2 }]);
        assert_eq!(o.missing, None);
    }

    #[test]
    fn integers_also_come_as_text() {
        let o: Outer =
            decode(json!({"EventSeqId": " 42", "Legs": {"a": {"LegId": "7"}}, "List": []}))
                .unwrap();
        assert_eq!(o.event_seq_id, Some(42));
        assert_eq!(o.legs["a"], Inner { leg_id: 7 });
        assert!(decode::<Outer>(json!({"EventSeqId": "4.2", "Legs": {}, "List": []})).is_err());
    }

    #[test]
    fn wrong_types_are_errors_naming_the_field_not_panics() {
        let error = decode::<Outer>(json!({"EventSeqId": "x", "Legs": {}, "List": []}))
            .expect_err("text that is not a number is not an i64");
        assert!(error.to_string().starts_with("EventSeqId: "), "{error}");
        let nested = decode::<Outer>(json!({"legs": {"put": {"legId": true}}, "List": []}))
            .expect_err("a bool is not an i64");
        assert!(
            nested.to_string().starts_with("Legs: put: LegId: "),
            "{nested}"
        );
        assert!(decode::<Outer>(json!([1, 2])).is_err());
        assert!(decode::<Outer>(json!(null)).is_err());
    }
}
