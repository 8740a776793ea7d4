//! Boundary tests of runink-contracts: contract files in `tests/data/`, error
//! snapshots in `tests/snapshots/`, and the checker on hand-made batches.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray, StringViewArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, TimeUnit};
use runink_contracts::{
    Checker, Contract, ContractError, SourceFormat, violations_data_type, violations_field,
};

const TRADE_YAML: &str = include_str!("data/trade.yaml");
const TRADE_GO: &str = include_str!("data/trade.go");

/// The pinned hash of the trade example. If this changes, every stored
/// contract hash changes: only update it on purpose.
const TRADE_HASH: &str = "sha256:1172c011962ef5b72576602623e651560b64237a6be0189e04fdd042131c49f9";

fn trade_yaml() -> Contract {
    Contract::load("trade.yaml", TRADE_YAML).unwrap()
}

fn trade_go() -> Contract {
    Contract::load("trade.go", TRADE_GO).unwrap()
}

fn err_text(r: Result<Contract, ContractError>) -> String {
    match r {
        Ok(c) => panic!("expected an error, loaded {c:?}"),
        Err(e) => e.to_string(),
    }
}

mod load {
    use super::*;

    #[test]
    fn yaml_example_reads_every_rule() {
        let c = trade_yaml();
        assert_eq!(c.id, "trade");
        assert_eq!(c.name, "Trade");
        assert_eq!(c.version, "1.2.0");
        assert_eq!(c.status.as_deref(), Some("active"));
        assert_eq!(c.description.as_deref(), Some("Validated trades"));
        assert_eq!(c.format, SourceFormat::Yaml);
        let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "trade_id",
                "symbol",
                "side",
                "quantity",
                "price",
                "trader_email",
                "traded_at"
            ]
        );
        let id = c.field("trade_id").unwrap();
        assert!(id.required && id.unique && id.primary_key && !id.nullable);
        assert_eq!(id.pattern.as_deref(), Some("^T[0-9]{7}$"));
        let symbol = c.field("symbol").unwrap();
        assert_eq!((symbol.min_length, symbol.max_length), (Some(1), Some(5)));
        let side = c.field("side").unwrap();
        assert_eq!(
            side.valid_values,
            Some(vec!["BUY".to_string(), "SELL".to_string()])
        );
        let quantity = c.field("quantity").unwrap();
        assert_eq!(quantity.data_type, DataType::Int64);
        assert_eq!(quantity.physical_type.as_deref(), Some("int64"));
        assert_eq!(quantity.exclusive_minimum, Some(0.0));
        let price = c.field("price").unwrap();
        assert_eq!((price.minimum, price.maximum), (Some(0.0), Some(100000.0)));
        let email = c.field("trader_email").unwrap();
        assert_eq!(email.classification.as_deref(), Some("pii"));
        assert_eq!(email.mask.as_deref(), Some("hash"));
        assert_eq!(email.access.as_deref(), Some("compliance"));
        assert!(email.nullable);
    }

    #[test]
    fn unquoted_valid_values_are_kept_as_written() {
        // YAML reads `2.50`, `01` and `0x10` as numbers; a string column of codes
        // needs them as written, as the Go form's `oneof=2.50 01` gives them.
        let yaml = "apiVersion: v3.1.0\nkind: DataContract\nid: codes\nversion: 1.0.0\nstatus: active\n\
                    schema:\n  - name: t\n    properties:\n\
                    \x20     - name: code\n        logicalType: string\n        enum: [01, 2.50, \"x\"]\n\
                    \x20     - name: price\n        logicalType: string\n        quality:\n\
                    \x20         - metric: nullValues\n            mustBe: 0\n\
                    \x20         - metric: invalidValues\n            mustBe: 0\n            arguments:\n\
                    \x20             validValues:\n                - 2.50\n                - 0x10\n                - true\n";
        let c = Contract::load("codes.yaml", yaml).unwrap();
        assert_eq!(
            c.fields[0].valid_values.as_deref(),
            Some(&["01".to_string(), "2.50".into(), "x".into()][..])
        );
        assert_eq!(
            c.fields[1].valid_values.as_deref(),
            Some(&["2.50".to_string(), "0x10".into(), "true".into()][..])
        );
        let go = "package c\n// @contract_version:\"1.0.0\"\ntype Codes struct {\n\
                  \tCode string `json:\"code\" validate:\"oneof=01 2.50 x\"`\n}\n";
        let go = Contract::load("codes.go", go).unwrap();
        assert_eq!(go.fields[0].valid_values, c.fields[0].valid_values);
    }

    #[test]
    fn yaml_and_go_forms_load_to_the_same_fields() {
        let yaml = trade_yaml();
        let go = trade_go();
        assert_eq!(go.format, SourceFormat::Go);
        assert_eq!(go.id, yaml.id);
        assert_eq!(go.name, yaml.name);
        assert_eq!(go.version, yaml.version);
        assert_eq!(go.status, yaml.status);
        assert_eq!(
            go.description.as_deref(),
            Some("Trade is one executed trade.")
        );
        // Physical types are source-system spellings; the Arrow type is what counts.
        let strip = |c: &Contract| {
            c.fields
                .iter()
                .cloned()
                .map(|mut f| {
                    f.physical_type = None;
                    f
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&go), strip(&yaml));
        assert_eq!(go.hash(), yaml.hash());
        assert_eq!(go.canonical_json(), yaml.canonical_json());
    }

    #[test]
    fn arrow_schema_of_the_example() {
        let expected = Schema::new(vec![
            ArrowField::new("trade_id", DataType::Utf8, false),
            ArrowField::new("symbol", DataType::Utf8, false),
            ArrowField::new("side", DataType::Utf8, false),
            ArrowField::new("quantity", DataType::Int64, true),
            ArrowField::new("price", DataType::Float64, true),
            ArrowField::new("trader_email", DataType::Utf8, true),
            ArrowField::new(
                "traded_at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
        ]);
        assert_eq!(trade_yaml().arrow_schema(), expected);
        assert_eq!(trade_go().arrow_schema(), expected);
    }

    #[test]
    fn rules_are_listed_in_a_stable_order() {
        let rules: Vec<String> = trade_yaml().rules().iter().map(|r| r.key()).collect();
        assert_eq!(
            rules,
            [
                "trade_id:type",
                "trade_id:required",
                "trade_id:unique",
                "trade_id:pattern",
                "symbol:type",
                "symbol:required",
                "symbol:min_length",
                "symbol:max_length",
                "side:type",
                "side:required",
                "side:valid_values",
                "quantity:type",
                "quantity:exclusive_minimum",
                "price:type",
                "price:minimum",
                "price:maximum",
                "trader_email:type",
                "traded_at:type",
            ]
        );
    }

    #[test]
    fn contract_roundtrips_through_serde() {
        let c = trade_yaml();
        let json = serde_json::to_string(&c).unwrap();
        let back: Contract = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn odcs_variants_load() {
        let yaml = r#"
apiVersion: v3.1.0
kind: DataContract
id: misc
version: "2"
status: draft
servers: [{ server: local, type: local, path: ./x }]
team: { name: data }
schema:
  - name: a
    properties:
      - &money
        name: amount
        physicalType: NUMERIC(12, 2)
        logicalType: number
        quality:
          - { metric: nullValues, mustBe: 0 }
          - { metric: duplicateValues, mustBeLessThan: 10 }
          - { type: sql, query: "SELECT 1", mustBe: 1 }
      - name: small
        logicalType: integer
        logicalTypeOptions: { format: i16, minimum: -5 }
      - name: day
        logicalType: date
        logicalTypeOptions: { minimum: "2024-01-01" }
      - name: tags
        logicalType: array
        items: { logicalType: string }
        logicalTypeOptions: { maxItems: 3 }
      - name: address
        logicalType: object
        properties:
          - { name: city, logicalType: string, required: true }
          - { name: zip, logicalType: integer }
      - name: blob
        logicalType: object
      - name: code
        logicalType: integer
        enum: [1, 2, 3]
        customProperties:
          - { property: join_key, value: true }
          - { property: lineage, value: "orders.code" }
          - { property: somethingElse, value: 1 }
      - name: untyped
      - <<: *money
        name: fee
  - name: ignored_second_object
    properties: [{ name: whatever, logicalType: string }]
"#;
        let c = Contract::from_yaml("misc.yaml", yaml).unwrap();
        assert_eq!(c.name, "misc");
        assert_eq!(c.version, "2");
        let f = |n: &str| c.field(n).unwrap().clone();
        assert_eq!(f("amount").data_type, DataType::Decimal128(12, 2));
        assert!(f("amount").required);
        assert!(
            !f("amount").unique,
            "a tolerance threshold is not a row rule"
        );
        assert_eq!(f("small").data_type, DataType::Int16);
        assert_eq!(f("small").minimum, Some(-5.0));
        assert_eq!(f("day").data_type, DataType::Date32);
        assert_eq!(f("day").minimum, Some(19723.0), "days since the epoch");
        assert_eq!(
            f("tags").data_type,
            DataType::List(Arc::new(ArrowField::new("item", DataType::Utf8, true)))
        );
        assert_eq!(f("tags").max_length, Some(3));
        assert_eq!(
            f("address").data_type,
            DataType::Struct(
                vec![
                    // `required` on a member is not enforced, so it stays nullable.
                    ArrowField::new("city", DataType::Utf8, true),
                    ArrowField::new("zip", DataType::Int64, true),
                ]
                .into()
            )
        );
        assert_eq!(f("blob").data_type, DataType::Utf8);
        assert_eq!(
            f("code").valid_values,
            Some(vec!["1".to_string(), "2".to_string(), "3".to_string()])
        );
        assert!(f("code").join_key);
        assert_eq!(f("code").lineage.as_deref(), Some("orders.code"));
        assert_eq!(f("untyped").data_type, DataType::Utf8);
        assert_eq!(f("fee").data_type, DataType::Decimal128(12, 2), "merge key");
        assert_eq!(c.fields.len(), 9);
    }

    #[test]
    fn go_variants_load() {
        let go = r#"package x

import (
	"database/sql"
	"time"
)

type Helper struct{ A int }

type (
	// Order is an order.
	/* @contract_version:"0.1.0" */
	Order struct {
		ID       int64            `json:"id,omitempty" validate:"required" join_key:"true"`
		Tags     []string         `json:"tags" validate:"max=3"`
		Raw      []byte           `json:"raw" validate:"len=16"`
		Amount   *decimal.Decimal `json:"amount" validate:"gte=0.01"`
		Note     sql.NullString   `json:"note" validate:"lt=10"`
		Secret   string           `json:"-"`
		internal string
		Kind     string `enum:"a, b" pii:"restricted" lineage:"src.kind"`
		A, B     int32  // two columns
		When     time.Time; Count uint16
	}
)
"#;
        let c = Contract::from_go("order.go", go).unwrap();
        assert_eq!(c.id, "order");
        assert_eq!(c.version, "0.1.0");
        let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id", "tags", "raw", "amount", "note", "kind", "a", "b", "when", "count"
            ]
        );
        let f = |n: &str| c.field(n).unwrap().clone();
        assert!(f("id").required && f("id").join_key);
        assert_eq!(f("tags").max_length, Some(3));
        assert_eq!(f("raw").data_type, DataType::Binary);
        assert_eq!(
            (f("raw").min_length, f("raw").max_length),
            (Some(16), Some(16))
        );
        assert_eq!(f("amount").data_type, DataType::Decimal128(38, 10));
        assert_eq!(f("amount").minimum, Some(0.01));
        assert!(!f("amount").required);
        assert_eq!(f("note").max_length, Some(9));
        assert_eq!(
            f("kind").valid_values,
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(f("kind").classification.as_deref(), Some("restricted"));
        assert_eq!(f("a").data_type, DataType::Int32);
        assert_eq!(f("count").data_type, DataType::UInt16);
    }

    /// Every validator must hold (go-playground's rule): a bound given twice keeps the
    /// tighter one, whichever order the validators come in, and the hash does not see the
    /// order either.
    #[test]
    fn go_validators_on_one_bound_all_hold() {
        let load = |tags: &str| {
            let go = format!(
                "// @contract_version:\"1.0.0\"\ntype N struct {{\n\tB int64 `json:\"b\" validate:\"{tags}\"`\n\tS string `json:\"s\" validate:\"max=2,lte=5,gt=0\"`\n}}\n"
            );
            Contract::from_go("n.go", &go).unwrap()
        };
        for (a, b) in [
            ("len=3,min=-5", "min=-5,len=3"),
            ("max=10,lte=100", "lte=100,max=10"),
        ] {
            let (x, y) = (load(a), load(b));
            assert_eq!(x.hash(), y.hash(), "{a} vs {b}");
            let bx = x.field("b").unwrap();
            let by = y.field("b").unwrap();
            assert_eq!(
                (bx.minimum, bx.maximum),
                (by.minimum, by.maximum),
                "{a} vs {b}"
            );
        }
        let c = load("len=3,min=-5");
        let b = c.field("b").unwrap();
        assert_eq!((b.minimum, b.maximum), (Some(3.0), Some(3.0)));
        assert_eq!(
            load("max=10,lte=100").field("b").unwrap().maximum,
            Some(10.0)
        );
        let s = c.field("s").unwrap();
        assert_eq!((s.min_length, s.max_length), (Some(1), Some(2)));
    }
}

mod hash {
    use super::*;

    #[test]
    fn example_hash_is_pinned() {
        let c = trade_yaml();
        insta::assert_snapshot!("trade_canonical_json", c.canonical_json());
        assert_eq!(c.hash(), TRADE_HASH);
        assert_eq!(trade_go().hash(), TRADE_HASH);
    }

    #[test]
    fn hash_ignores_presentation() {
        let renamed = TRADE_YAML
            .replace("name: Trade\n", "name: Trades (renamed)\n")
            .replace("status: active", "status: deprecated")
            .replace("purpose: Validated trades", "purpose: Something else")
            .replace("minimum: 0,", "minimum: 0.0,");
        assert_eq!(
            Contract::from_yaml("t.yaml", &renamed).unwrap().hash(),
            TRADE_HASH
        );
    }

    #[test]
    fn changed_rules_change_the_hash() {
        let changes = [
            ("maximum: 100000", "maximum: 100001"),
            ("[BUY, SELL]", "[SELL, BUY]"),
            ("value: hash", "value: redact"),
            ("version: 1.2.0", "version: 1.2.1"),
            ("maxLength: 5", "maxLength: 6"),
            ("physicalType: int64", "physicalType: int32"),
            ("classification: pii", "classification: public"),
        ];
        for (from, to) in changes {
            assert!(TRADE_YAML.contains(from), "{from}");
            let changed = Contract::from_yaml("t.yaml", &TRADE_YAML.replace(from, to)).unwrap();
            assert_ne!(changed.hash(), TRADE_HASH, "{from} -> {to}");
        }
        let go = TRADE_GO.replace("gt=0", "gte=0");
        assert_ne!(Contract::from_go("t.go", &go).unwrap().hash(), TRADE_HASH);
    }
}

/// The checker's output as plain data: per row, (rule, column, message).
fn violations(list: &ListArray) -> Vec<Vec<(String, String, String)>> {
    (0..list.len())
        .map(|row| {
            let items = list.value(row);
            let items = items.as_struct();
            let col = |i: usize| items.column(i).as_string::<i32>().clone();
            let (rule, column, message) = (col(0), col(1), col(2));
            (0..items.len())
                .map(|j| {
                    (
                        rule.value(j).to_string(),
                        column.value(j).to_string(),
                        message.value(j).to_string(),
                    )
                })
                .collect()
        })
        .collect()
}

fn v(rule: &str, column: &str, message: &str) -> (String, String, String) {
    (rule.to_string(), column.to_string(), message.to_string())
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

mod check {
    use super::*;

    /// The trade schema, but `quantity` arrives as text (as from CSV).
    fn input_schema() -> Schema {
        let mut fields: Vec<ArrowField> = trade_yaml()
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        fields[3] = ArrowField::new("quantity", DataType::Utf8, true);
        fields.push(ArrowField::new("extra", DataType::Boolean, true));
        Schema::new(fields)
    }

    #[allow(clippy::type_complexity)]
    fn batch(
        ids: &[Option<&str>],
        symbols: &[Option<&str>],
        sides: &[Option<&str>],
        quantities: &[Option<&str>],
        prices: &[Option<f64>],
    ) -> RecordBatch {
        let n = ids.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids.to_vec())),
            Arc::new(StringArray::from(symbols.to_vec())),
            Arc::new(StringArray::from(sides.to_vec())),
            Arc::new(StringArray::from(quantities.to_vec())),
            Arc::new(Float64Array::from(prices.to_vec())),
            Arc::new(StringArray::from(vec![Some("a@example.com"); n])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(
                    1_700_000_000_000_000
                );
                n
            ])),
            Arc::new(BooleanArray::from(vec![None; n])),
        ];
        RecordBatch::try_new(Arc::new(input_schema()), columns).unwrap()
    }

    #[test]
    fn every_rule_of_the_example() {
        let contract = trade_yaml();
        let mut checker = Checker::new(&contract, &input_schema()).unwrap();
        let first = batch(
            &[Some("T0000001"), Some("X1"), None, Some("T0000001")],
            &[Some("AAPL"), Some(""), Some("TOOLONG"), Some("MSFT")],
            &[Some("BUY"), Some("HOLD"), None, Some("SELL")],
            &[Some("100"), Some("abc"), Some("0"), None],
            &[Some(10.5), Some(-5.0), Some(100001.0), None],
        );
        let out = checker.check(&first).unwrap();
        assert_eq!(
            violations(&out.violations),
            vec![
                vec![],
                vec![
                    v(
                        "pattern",
                        "trade_id",
                        r#"value "X1" does not match pattern "^T[0-9]{7}$""#
                    ),
                    v(
                        "min_length",
                        "symbol",
                        r#"value "" has length 0, less than minimum length 1"#
                    ),
                    v(
                        "valid_values",
                        "side",
                        r#"value "HOLD" is not one of [BUY, SELL]"#
                    ),
                    v("type", "quantity", r#"value "abc" is not a valid Int64"#),
                    v("minimum", "price", "value -5 is less than minimum 0"),
                ],
                vec![
                    v("required", "trade_id", "null value in required column"),
                    v(
                        "max_length",
                        "symbol",
                        r#"value "TOOLONG" has length 7, more than maximum length 5"#
                    ),
                    v("required", "side", "null value in required column"),
                    v(
                        "exclusive_minimum",
                        "quantity",
                        "value 0 is not greater than exclusive minimum 0"
                    ),
                    v(
                        "maximum",
                        "price",
                        "value 100001 is greater than maximum 100000"
                    ),
                ],
                vec![v(
                    "unique",
                    "trade_id",
                    r#"duplicate value "T0000001" (first seen earlier in this run)"#
                )],
            ]
        );
        assert_eq!(
            out.valid,
            BooleanArray::from(vec![true, false, false, false])
        );
        assert_eq!(out.invalid_rows(), 3);
        assert_eq!(
            out.counts,
            counts(&[
                ("price:maximum", 1),
                ("price:minimum", 1),
                ("quantity:exclusive_minimum", 1),
                ("quantity:type", 1),
                ("side:required", 1),
                ("side:valid_values", 1),
                ("symbol:max_length", 1),
                ("symbol:min_length", 1),
                ("trade_id:pattern", 1),
                ("trade_id:required", 1),
                ("trade_id:unique", 1),
            ])
        );
        assert_eq!(out.violations.data_type(), &violations_data_type());
        // Conformed columns: quantity is now Int64, with the bad value null.
        assert_eq!(out.columns.len(), 7);
        assert_eq!(
            out.columns[3].as_primitive::<arrow::datatypes::Int64Type>(),
            &Int64Array::from(vec![Some(100), None, Some(0), None])
        );

        // Unique holds across batches of one run.
        let second = batch(
            &[Some("T0000001"), Some("T0000002")],
            &[Some("IBM"), Some("IBM")],
            &[Some("BUY"), Some("BUY")],
            &[Some("1"), Some("2")],
            &[Some(1.0), Some(2.0)],
        );
        let out = checker.check(&second).unwrap();
        assert_eq!(
            violations(&out.violations),
            vec![
                vec![v(
                    "unique",
                    "trade_id",
                    r#"duplicate value "T0000001" (first seen earlier in this run)"#
                )],
                vec![],
            ]
        );
        assert_eq!(out.counts, counts(&[("trade_id:unique", 1)]));
    }

    #[test]
    fn a_clean_batch_takes_the_fast_path() {
        let contract = trade_yaml();
        let mut checker = Checker::new(&contract, &input_schema()).unwrap();
        let clean = batch(
            &[Some("T0000001"), Some("T0000002"), Some("T0000003")],
            &[Some("A"), Some("BB"), Some("CCCCC")],
            &[Some("BUY"), Some("SELL"), Some("BUY")],
            &[Some("1"), None, Some("3")],
            &[Some(0.0), Some(100000.0), None],
        );
        let out = checker.check(&clean).unwrap();
        assert_eq!(out.violations.len(), 3);
        assert!(violations(&out.violations).iter().all(Vec::is_empty));
        assert_eq!(out.valid, BooleanArray::from(vec![true; 3]));
        assert_eq!(out.valid.null_count(), 0);
        assert!(out.counts.is_empty());
        assert_eq!(out.invalid_rows(), 0);

        let empty = batch(&[], &[], &[], &[], &[]);
        let out = checker.check(&empty).unwrap();
        assert_eq!(out.violations.len(), 0);
        assert_eq!(out.valid.len(), 0);
    }

    #[test]
    fn string_views_are_checked_without_a_cast() {
        let contract = Contract::from_yaml(
            "s.yaml",
            "id: s\nversion: 1.0.0\nschema:\n  - name: s\n    properties:\n      - name: code\n        logicalType: string\n        unique: true\n        enum: [aé, b]\n        logicalTypeOptions: { maxLength: 2, pattern: '^[a-z]' }\n",
        )
        .unwrap();
        let schema = Schema::new(vec![ArrowField::new("code", DataType::Utf8View, true)]);
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let values =
            StringViewArray::from(vec![Some("aé"), Some("b"), None, Some("Zzz"), Some("b")]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(values)]).unwrap();
        let out = checker.check(&batch).unwrap();
        assert_eq!(out.columns[0].data_type(), &DataType::Utf8View);
        assert_eq!(
            violations(&out.violations),
            vec![
                vec![],
                vec![],
                vec![],
                vec![
                    v(
                        "valid_values",
                        "code",
                        r#"value "Zzz" is not one of [aé, b]"#
                    ),
                    v(
                        "pattern",
                        "code",
                        r#"value "Zzz" does not match pattern "^[a-z]""#
                    ),
                    v(
                        "max_length",
                        "code",
                        r#"value "Zzz" has length 3, more than maximum length 2"#
                    ),
                ],
                vec![v(
                    "unique",
                    "code",
                    r#"duplicate value "b" (first seen earlier in this run)"#
                )],
            ]
        );
    }

    #[test]
    fn other_types_and_rules() {
        let yaml = r#"
id: misc
version: 1.0.0
schema:
  - name: misc
    properties:
      - name: score
        logicalType: number
        logicalTypeOptions: { exclusiveMaximum: 1, minimum: 0.5 }
      - name: day
        logicalType: date
        unique: true
        logicalTypeOptions: { minimum: "2024-01-01" }
      - name: level
        logicalType: integer
        physicalType: int32
        enum: [1, 2, 3]
        logicalTypeOptions: { maximum: 2.5 }
      - name: tags
        logicalType: array
        items: { logicalType: string }
        logicalTypeOptions: { maxItems: 1 }
"#;
        let contract = Contract::from_yaml("misc.yaml", yaml).unwrap();
        // Everything arrives as text, except tags, which is a list.
        let tags_type = contract.field("tags").unwrap().data_type.clone();
        let schema = Schema::new(vec![
            ArrowField::new("score", DataType::Utf8, true),
            ArrowField::new("day", DataType::Utf8, true),
            ArrowField::new("level", DataType::Int64, true),
            ArrowField::new("tags", tags_type, true),
        ]);
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let tags = arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Int32Type, _, _>(
            vec![Some(vec![Some(1)]), Some(vec![Some(1), Some(2)]), None],
        );
        let tags = arrow::compute::cast(&tags, &contract.field("tags").unwrap().data_type).unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("0.75"),
                    Some("1"),
                    Some("0.25"),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("2024-05-01"),
                    Some("2023-12-31"),
                    Some("2024-05-01"),
                ])),
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(3),
                    Some(4_000_000_000),
                ])),
                tags,
            ],
        )
        .unwrap();
        let out = checker.check(&batch).unwrap();
        assert_eq!(
            violations(&out.violations),
            vec![
                vec![],
                vec![
                    v(
                        "exclusive_maximum",
                        "score",
                        "value 1 is not less than exclusive maximum 1"
                    ),
                    v(
                        "minimum",
                        "day",
                        "value 2023-12-31 is less than minimum 2024-01-01"
                    ),
                    v("maximum", "level", "value 3 is greater than maximum 2.5"),
                    v(
                        "max_length",
                        "tags",
                        r#"value [1, 2] has length 2, more than maximum length 1"#
                    ),
                ],
                // Also a duplicate `day`, but `unique` only judges rows every other rule
                // accepted: this row is rejected already.
                vec![
                    v("minimum", "score", "value 0.25 is less than minimum 0.5"),
                    v("type", "level", "value 4000000000 is not a valid Int32"),
                ],
            ]
        );
    }

    #[test]
    fn conversions_that_would_change_a_value_are_type_violations() {
        let yaml = r#"
id: lossy
version: 1.0.0
schema:
  - name: lossy
    properties:
      - name: amount
        logicalType: integer
      - name: price
        logicalType: number
        physicalType: decimal(5,2)
      - name: day
        logicalType: date
      - name: on
        logicalType: date
      - name: ratio
        logicalType: number
        physicalType: float
      - name: cost
        logicalType: number
        physicalType: decimal(5,2)
      - name: wide
        logicalType: number
        physicalType: decimal(38,10)
      - name: utc_day
        logicalType: date
"#;
        let contract = Contract::from_yaml("lossy.yaml", yaml).unwrap();
        let schema = Schema::new(vec![
            ArrowField::new("amount", DataType::Float64, true),
            ArrowField::new("price", DataType::Float64, true),
            ArrowField::new("day", DataType::Utf8, true),
            ArrowField::new(
                "on",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Second, None),
                true,
            ),
            ArrowField::new("ratio", DataType::Float64, true),
            ArrowField::new("cost", DataType::Utf8, true),
            ArrowField::new("wide", DataType::Utf8, true),
            ArrowField::new(
                "utc_day",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Second, Some("+00:00".into())),
                true,
            ),
        ]);
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(arrow::array::Float64Array::from(vec![
                    -0.0, 10.5, 1e3, -0.9,
                ])),
                Arc::new(arrow::array::Float64Array::from(vec![
                    1.5, 1.25, 123.456, 0.1,
                ])),
                Arc::new(StringArray::from(vec![
                    "2024-01-01",
                    "2024-01-01T12:34:56",
                    "2024-02-29",
                    "2024-03-01",
                ])),
                Arc::new(arrow::array::TimestampSecondArray::from(vec![
                    1_704_067_200, // 2024-01-01 00:00:00
                    1_704_067_200,
                    1_704_067_200,
                    1_704_112_496, // 2024-01-01 12:34:56
                ])),
                // Into a float nothing is "changed": 0.1 is approximate in both widths.
                Arc::new(arrow::array::Float64Array::from(vec![0.1, 0.2, 1e-3, 3.3])),
                // Text with more decimals than the scale is; trailing zeros are not.
                Arc::new(StringArray::from(vec!["1.5", "2.50", "123.456", "0.1"])),
                // At precision 38 too: eleven decimals do not fit a scale of ten.
                Arc::new(StringArray::from(vec![
                    "1.5",
                    "2.1234567891",
                    "3",
                    "1.12345678901",
                ])),
                Arc::new(
                    arrow::array::TimestampSecondArray::from(vec![
                        1_704_067_200, // 2024-01-01 00:00:00 UTC
                        1_704_067_200,
                        1_704_067_200,
                        1_704_103_200, // 2024-01-01 10:00:00 UTC
                    ])
                    .with_timezone("+00:00"),
                ),
            ],
        )
        .unwrap();
        let out = checker.check(&batch).unwrap();
        let rules: Vec<Vec<(String, String)>> = violations(&out.violations)
            .into_iter()
            .map(|row| row.into_iter().map(|(r, c, _)| (r, c)).collect())
            .collect();
        let t = |c: &str| ("type".to_string(), c.to_string());
        assert_eq!(
            rules,
            vec![
                vec![],
                vec![t("amount"), t("day")],
                vec![t("price"), t("cost")],
                vec![t("amount"), t("on"), t("wide"), t("utc_day")],
            ]
        );
    }

    #[test]
    fn unique_integers_ignore_nulls() {
        let contract = Contract::from_yaml(
            "u.yaml",
            "id: u\nversion: 1.0.0\nschema:\n  - name: u\n    properties:\n      - { name: n, logicalType: integer, unique: true }\n",
        )
        .unwrap();
        let schema = Arc::new(contract.arrow_schema());
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let batch = |values: Vec<Option<i64>>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(values))],
            )
            .unwrap()
        };
        let out = checker
            .check(&batch(vec![Some(1), None, Some(2), None, Some(1)]))
            .unwrap();
        assert_eq!(
            out.valid,
            BooleanArray::from(vec![true, true, true, true, false])
        );
        assert_eq!(
            violations(&out.violations)[4],
            vec![v(
                "unique",
                "n",
                "duplicate value 1 (first seen earlier in this run)"
            )]
        );
        let out = checker.check(&batch(vec![Some(2), Some(3), None])).unwrap();
        assert_eq!(out.valid, BooleanArray::from(vec![false, true, true]));
        assert_eq!(out.counts, counts(&[("n:unique", 1)]));
    }

    #[test]
    fn a_row_repeating_one_unique_column_claims_none_of_its_keys() {
        let contract = Contract::from_yaml(
            "u.yaml",
            "id: u\nversion: 1.0.0\nschema:\n  - name: u\n    properties:\n      - { name: k1, logicalType: string, unique: true }\n      - { name: k2, logicalType: integer, unique: true }\n      - { name: k3, logicalType: number, unique: true }\n",
        )
        .unwrap();
        let schema = Arc::new(contract.arrow_schema());
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let mut other = checker.clone();
        // k3 never repeats.
        let next = std::cell::Cell::new(0.5f64);
        let batch = |k1: Vec<Option<&str>>, k2: Vec<Option<i64>>| {
            let k3: Vec<Option<f64>> = (0..k1.len())
                .map(|_| {
                    next.set(next.get() + 1.0);
                    Some(next.get())
                })
                .collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(k1)),
                    Arc::new(Int64Array::from(k2)),
                    Arc::new(arrow::array::Float64Array::from(k3)),
                ],
            )
            .unwrap()
        };
        // (b, 1) repeats k2 only: rejected, and `b` stays free for (b, 2). (a, 1) again
        // repeats both, and gets a violation for each; a null key claims nothing.
        let out = checker
            .check(&batch(
                vec![Some("a"), Some("b"), Some("b"), Some("a"), None],
                vec![Some(1), Some(1), Some(2), Some(1), Some(3)],
            ))
            .unwrap();
        assert_eq!(
            out.valid,
            BooleanArray::from(vec![true, false, true, false, true])
        );
        let rules = |row: &[(String, String, String)]| -> Vec<(String, String)> {
            row.iter().map(|(r, c, _)| (r.clone(), c.clone())).collect()
        };
        let found = violations(&out.violations);
        let u = |c: &str| ("unique".to_string(), c.to_string());
        assert_eq!(rules(&found[1]), vec![u("k2")]);
        assert_eq!(rules(&found[3]), vec![u("k1"), u("k2")]);
        assert_eq!(out.counts, counts(&[("k1:unique", 1), ("k2:unique", 2)]));
        // A clone (another partition) shares the claims: (c, 3) repeats k2 = 3 of the null
        // row, so `c` stays free; (c, 4) then passes.
        let out = other
            .check(&batch(
                vec![Some("c"), Some("c"), Some("b")],
                vec![Some(3), Some(4), Some(5)],
            ))
            .unwrap();
        assert_eq!(out.valid, BooleanArray::from(vec![false, true, false]));
        assert_eq!(out.counts, counts(&[("k1:unique", 1), ("k2:unique", 1)]));
    }

    #[test]
    fn float32_bounds_compare_at_the_columns_width() {
        let contract = Contract::from_yaml(
            "f.yaml",
            "id: f\nversion: 1.0.0\nschema:\n  - name: f\n    properties:\n      - { name: f, logicalType: number, physicalType: float, logicalTypeOptions: { maximum: 0.1 } }\n      - { name: g, logicalType: number, physicalType: float32, logicalTypeOptions: { exclusiveMinimum: 0.3 } }\n",
        )
        .unwrap();
        let schema = Arc::new(contract.arrow_schema());
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(arrow::array::Float32Array::from(vec![0.1, 0.2, 0.0])),
                Arc::new(arrow::array::Float32Array::from(vec![0.5, 0.5, 0.3])),
            ],
        )
        .unwrap();
        let out = checker.check(&batch).unwrap();
        // 0.1 is the maximum itself; 0.3 is the exclusive minimum itself.
        assert_eq!(out.valid, BooleanArray::from(vec![true, false, false]));
        assert_eq!(
            out.counts,
            counts(&[("f:maximum", 1), ("g:exclusive_minimum", 1)])
        );
    }

    /// A float holds the nearest float of a value, but a finite value too large for it
    /// (it would become infinite) is a `type` violation; infinity itself stays infinity.
    /// Arrow reads `12:30:60` as 12:31:00: a changed value, so a `type` violation.
    #[test]
    fn a_sixtieth_second_is_a_type_violation() {
        let contract = Contract::from_yaml(
            "t.yaml",
            "id: t\nversion: 1.0.0\nschema:\n  - name: t\n    properties:\n      - { name: ts, logicalType: timestamp }\n",
        )
        .unwrap();
        let schema = Arc::new(Schema::new(vec![ArrowField::new(
            "ts",
            DataType::Utf8,
            true,
        )]));
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let input = arrow::array::StringArray::from(vec![
            "2026-11-09T12:30:60",
            "2026-11-09T12:30:59",
            "2026-12-31T23:59:60+02:00",
            "2026-11-09 12:30:00.5",
        ]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(input)]).unwrap();
        let out = checker.check(&batch).unwrap();
        assert_eq!(
            out.valid,
            BooleanArray::from(vec![false, true, false, true])
        );
        assert_eq!(out.counts, counts(&[("ts:type", 2)]));
    }

    #[test]
    fn values_that_overflow_a_float_are_type_violations() {
        let contract = Contract::from_yaml(
            "f.yaml",
            "id: f\nversion: 1.0.0\nschema:\n  - name: f\n    properties:\n      - { name: x, logicalType: number, physicalType: float }\n",
        )
        .unwrap();
        for input in [
            Arc::new(arrow::array::Float64Array::from(vec![
                3.4e39,
                1.5,
                f64::INFINITY,
                -3.4e39,
            ])) as arrow::array::ArrayRef,
            Arc::new(arrow::array::StringArray::from(vec![
                "3.4e39", "1.5", "inf", "-3.4e39",
            ])),
        ] {
            let schema = Arc::new(Schema::new(vec![ArrowField::new(
                "x",
                input.data_type().clone(),
                true,
            )]));
            let mut checker = Checker::new(&contract, &schema).unwrap();
            let batch = RecordBatch::try_new(schema, vec![input.clone()]).unwrap();
            let out = checker.check(&batch).unwrap();
            assert_eq!(
                out.valid,
                BooleanArray::from(vec![false, true, true, false]),
                "{input:?}"
            );
            assert_eq!(out.counts, counts(&[("x:type", 2)]), "{input:?}");
        }
    }

    #[test]
    fn whole_numbers_in_text_conform_to_integer_columns() {
        // The verdict must not depend on whether the text was read as floats first (a
        // Scenario contract after CSV inference) or as text (a source contract).
        let contract = Contract::from_yaml(
            "i.yaml",
            "id: i\nversion: 1.0.0\nschema:\n  - name: i\n    properties:\n      - { name: q, logicalType: integer, physicalType: int8 }\n",
        )
        .unwrap();
        let schema = Arc::new(Schema::new(vec![ArrowField::new(
            "q",
            DataType::Utf8,
            true,
        )]));
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let text = [
            "5.0", "10.5", "300", "1e1", "-0.0", "7", "127.0", "128.0", "NaN", "inf", "x",
        ];
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(text.to_vec()))],
        )
        .unwrap();
        let out = checker.check(&batch).unwrap();
        assert_eq!(
            out.valid,
            BooleanArray::from(vec![
                true, false, false, true, true, true, true, false, false, false, false
            ])
        );
        assert_eq!(out.counts, counts(&[("q:type", 6)]));
        let q = out.columns[0].as_primitive::<arrow::datatypes::Int8Type>();
        assert_eq!(
            (q.value(0), q.value(3), q.value(4), q.value(6)),
            (5, 10, 0, 127)
        );
    }

    #[test]
    fn minus_zero_meets_a_zero_bound() {
        let contract = Contract::from_yaml(
            "z.yaml",
            "id: z\nversion: 1.0.0\nschema:\n  - name: z\n    properties:\n      - { name: x, logicalType: number, logicalTypeOptions: { minimum: 0 } }\n      - { name: y, logicalType: number, physicalType: float32, logicalTypeOptions: { maximum: -0.0 } }\n",
        )
        .unwrap();
        let schema = Arc::new(contract.arrow_schema());
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Float64Array::from(vec![-0.0, 0.0, -1e-300])),
                Arc::new(arrow::array::Float32Array::from(vec![0.0, -0.0, 1e-30])),
            ],
        )
        .unwrap();
        let out = checker.check(&batch).unwrap();
        assert_eq!(out.valid, BooleanArray::from(vec![true, true, false]));
        assert_eq!(out.counts, counts(&[("x:minimum", 1), ("y:maximum", 1)]));
    }

    #[test]
    fn unique_numbers_treat_minus_zero_as_zero() {
        let contract = Contract::from_yaml(
            "z.yaml",
            "id: z\nversion: 1.0.0\nschema:\n  - name: z\n    properties:\n      - { name: x, logicalType: number, unique: true }\n",
        )
        .unwrap();
        let schema = Arc::new(contract.arrow_schema());
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(arrow::array::Float64Array::from(vec![
                Some(0.0),
                Some(-0.0),
                Some(1.5),
                None,
                Some(1.5),
            ]))],
        )
        .unwrap();
        let out = checker.check(&batch).unwrap();
        assert_eq!(
            out.valid,
            BooleanArray::from(vec![true, false, true, true, false])
        );
    }

    #[test]
    fn sub_microsecond_text_is_a_type_violation_not_cut() {
        let contract = Contract::from_yaml(
            "t.yaml",
            "id: t\nversion: 1.0.0\nschema:\n  - name: t\n    properties:\n      - { name: ts, logicalType: timestamp }\n      - { name: t, logicalType: time }\n",
        )
        .unwrap();
        let schema = Arc::new(Schema::new(vec![
            ArrowField::new("ts", DataType::Utf8, true),
            ArrowField::new("t", DataType::Utf8, true),
        ]));
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec![
                    "2024-06-01T12:00:00.123456",
                    "2024-06-01T12:00:00.1234567",
                    "2024-06-01T12:00:00.1234560",
                    "2024-06-01T12:00:00",
                ])),
                Arc::new(StringArray::from(vec![
                    "12:00:00.5",
                    "12:00:00",
                    "12:00:00",
                    "12:00:00.1234567",
                ])),
            ],
        )
        .unwrap();
        let out = checker.check(&batch).unwrap();
        assert_eq!(
            out.valid,
            BooleanArray::from(vec![true, false, true, false])
        );
        assert_eq!(out.counts, counts(&[("t:type", 1), ("ts:type", 1)]));
    }

    #[test]
    fn checker_rejects_inputs_that_cannot_conform() {
        let contract = trade_yaml();
        let missing = Schema::new(vec![ArrowField::new("trade_id", DataType::Utf8, true)]);
        insta::assert_snapshot!(
            "checker_missing_column",
            Checker::new(&contract, &missing).unwrap_err().to_string()
        );
        let mut fields: Vec<ArrowField> = contract
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[6] = ArrowField::new(
            "traded_at",
            DataType::List(Arc::new(ArrowField::new("item", DataType::Int64, true))),
            true,
        );
        let err = Checker::new(&contract, &Schema::new(fields)).unwrap_err();
        assert!(matches!(err, ContractError::Schema { .. }));
        insta::assert_snapshot!("checker_uncastable_column", err.to_string());
    }

    #[test]
    fn checker_is_send_and_violations_field_is_stable() {
        fn send<T: Send + std::fmt::Debug>() {}
        send::<Checker>();
        let f = violations_field();
        assert_eq!(f.name(), "_violations");
        assert!(!f.is_nullable());
        assert_eq!(f.data_type(), &violations_data_type());
    }
}

mod errors {
    use super::*;

    fn yaml_err(text: &str) -> String {
        err_text(Contract::load("bad.yaml", text))
    }

    fn go_err(text: &str) -> String {
        err_text(Contract::load("bad.go", text))
    }

    #[test]
    fn malformed_yaml() {
        insta::assert_snapshot!(
            "yaml_malformed",
            yaml_err(
                "id: x\nversion: 1.0.0\nschema:\n  - name: a\n    properties: [\n      - name: b\n"
            )
        );
    }

    #[test]
    fn unknown_logical_type() {
        let text = TRADE_YAML.replace("logicalType: number", "logicalType: money");
        insta::assert_snapshot!("yaml_unknown_logical_type", yaml_err(&text));
    }

    #[test]
    fn unknown_physical_type() {
        // Another system's type name loads (`datacontract lint` accepts any): the logical
        // type decides the column's type.
        for other in ["money(2)", "uuid", "VARCHAR2(100)", "int(11)"] {
            let text =
                TRADE_YAML.replace("physicalType: double", &format!("physicalType: {other}"));
            let c = Contract::load("t.yaml", &text).unwrap();
            let price = c.fields.iter().find(|f| f.name == "price").unwrap();
            assert_eq!(price.data_type, DataType::Float64, "{other}");
            assert_eq!(price.physical_type.as_deref(), Some(other));
        }
        // A byte-order mark in front is not part of the document.
        let c = Contract::load("t.yaml", &format!("\u{feff}{TRADE_YAML}")).unwrap();
        assert_eq!(c.fields.len(), 7);
        for bad in ["decimal(40,2)", "numeric(5,9)"] {
            let text = TRADE_YAML.replace("physicalType: double", &format!("physicalType: {bad}"));
            let err = yaml_err(&text);
            assert!(err.contains("precision of 1 to 38"), "{err}");
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn misspelt_keys_and_metrics_are_errors_not_dropped_rules() {
        for (from, to, needle) in [
            ("maxLength: 5", "maxlength: 5", "bad.yaml:21:45:"),
            (
                "maxLength: 5",
                "maxlength: 5",
                "unknown key `maxlength` in `logicalTypeOptions` of `symbol`",
            ),
            (
                "metric: invalidValues",
                "metric: invalidValue",
                "unknown quality metric `invalidValue` for `side`",
            ),
            (
                "arguments: { validValues: [BUY, SELL] }",
                "arguments: [BUY, SELL]",
                "`arguments` of an invalidValues check on `side` must be a mapping",
            ),
            // Row rules ODCS defines and Runink does not enforce yet: refused, not ignored.
            (
                "metric: invalidValues\n            arguments: { validValues: [BUY, SELL] }",
                "metric: missingValues\n            arguments: { missingValues: ['N/A'] }",
                "the `missingValues` check on `side` is not enforced by this runi yet",
            ),
            (
                "maxLength: 5",
                "maxLength: 5, multipleOf: 5",
                "`multipleOf` of `symbol` is not enforced by this runi yet",
            ),
            (
                "logicalTypeOptions: { exclusiveMinimum: 0 }",
                "logicalTypeOptions: { exclusiveMinimum: 0, format: i7 }",
                "format `i7` of `quantity` is not a width of integer",
            ),
        ] {
            assert!(TRADE_YAML.contains(from), "{from}");
            let err = yaml_err(&TRADE_YAML.replacen(from, to, 1));
            assert!(err.contains(needle), "{to}: {err}");
        }
        let err = yaml_err(&TRADE_YAML.replacen("required: true", "requird: true", 1));
        assert!(
            err.contains("unknown key `requird` in a property of"),
            "{err}"
        );
        assert!(err.contains("bad.yaml:14:"), "{err}");
    }

    #[test]
    fn bounds_that_leave_no_value_are_errors() {
        for (from, to) in [
            (
                "{ exclusiveMinimum: 0 }",
                "{ exclusiveMinimum: 10, maximum: 5 }",
            ),
            (
                "{ exclusiveMinimum: 0 }",
                "{ exclusiveMinimum: 5, exclusiveMaximum: 5 }",
            ),
            (
                "{ exclusiveMinimum: 0 }",
                "{ minimum: 10, exclusiveMaximum: 5 }",
            ),
        ] {
            let err = yaml_err(&TRADE_YAML.replacen(from, to, 1));
            assert!(err.contains("allow no value at all"), "{to}: {err}");
        }
        // Meeting both inclusive bounds exactly is one value, and loads.
        Contract::load(
            "ok.yaml",
            &TRADE_YAML.replacen("{ exclusiveMinimum: 0 }", "{ minimum: 5, maximum: 5 }", 1),
        )
        .unwrap();
        let go = include_str!("data/trade.go").replacen(
            "validate:\"gt=0\"",
            "validate:\"gt=5,lt=5\"",
            1,
        );
        let err = go_err(&go);
        assert!(err.contains("allow no value at all"), "{err}");
    }

    #[test]
    fn integer_bounds_a_float_cannot_hold_are_errors() {
        for (bound, ok) in [
            ("9007199254740993", false),
            ("9223372036854775807", false),
            ("9007199254740992", true),
            ("1152921504606846976", true),
        ] {
            let text = TRADE_YAML.replacen(
                "{ exclusiveMinimum: 0 }",
                &format!("{{ maximum: {bound} }}"),
                1,
            );
            let go = include_str!("data/trade.go").replacen(
                "validate:\"gt=0\"",
                &format!("validate:\"lte={bound}\""),
                1,
            );
            if ok {
                Contract::load("ok.yaml", &text).unwrap();
                Contract::load("ok.go", &go).unwrap();
            } else {
                assert!(yaml_err(&text).contains("cannot hold exactly"), "{bound}");
                assert!(go_err(&go).contains("cannot hold exactly"), "{bound}");
            }
        }
    }

    #[test]
    fn a_null_among_valid_values_is_named() {
        let text = TRADE_YAML.replacen(
            "arguments: { validValues: [BUY, SELL] }",
            "arguments: { validValues: [BUY, null, SELL] }",
            1,
        );
        let err = yaml_err(&text);
        assert!(err.contains("item 2 is null"), "{err}");
    }

    #[test]
    fn a_go_struct_missing_its_brace_is_named() {
        let go = include_str!("data/trade.go");
        let cut = go.rfind('}').unwrap();
        let err = go_err(&go[..cut]);
        assert!(err.contains("is never closed"), "{err}");
        assert!(err.starts_with("bad.go:"), "{err}");
    }

    #[test]
    fn date_bounds_in_messages_read_as_dates() {
        let text = TRADE_YAML.replacen(
            "      - name: traded_at\n        logicalType: timestamp",
            "      - name: traded_at\n        logicalType: date\n        logicalTypeOptions: { minimum: \"2024-05-01\", maximum: \"2024-01-01\" }",
            1,
        );
        assert_ne!(text, TRADE_YAML);
        let err = yaml_err(&text);
        assert!(err.contains("minimum 2024-05-01"), "{err}");
        assert!(err.contains("maximum 2024-01-01"), "{err}");
    }

    #[test]
    fn bad_regex() {
        let text = TRADE_YAML.replace("'^T[0-9]{7}$'", "'^T[0-9{7}$'");
        insta::assert_snapshot!("yaml_bad_regex", yaml_err(&text));
    }

    #[test]
    fn rule_that_does_not_fit_the_type() {
        let text = TRADE_YAML.replace("minLength: 1, maxLength: 5", "minimum: 1");
        insta::assert_snapshot!("yaml_bound_on_string", yaml_err(&text));
    }

    #[test]
    fn missing_top_level_keys() {
        insta::assert_snapshot!(
            "yaml_missing_version",
            yaml_err(&TRADE_YAML.replace("version: 1.2.0\n", ""))
        );
        insta::assert_snapshot!(
            "yaml_missing_schema",
            yaml_err(
                "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\n"
            )
        );
        insta::assert_snapshot!(
            "yaml_missing_property_name",
            yaml_err(
                "id: x\nversion: 1.0.0\nschema:\n  - name: a\n    properties:\n      - logicalType: string\n"
            )
        );
        insta::assert_snapshot!("yaml_empty", yaml_err(""));
    }

    #[test]
    fn go_unknown_type() {
        let text = TRADE_GO.replace("Price       float64", "Price       Money  ");
        insta::assert_snapshot!("go_unknown_type", go_err(&text));
    }

    #[test]
    fn go_without_annotated_struct() {
        let text = TRADE_GO.replace("// @contract_version:\"1.2.0\"\n", "");
        insta::assert_snapshot!("go_not_annotated", go_err(&text));
        insta::assert_snapshot!("go_no_struct", go_err("package x\n\nfunc main() {}\n"));
    }

    #[test]
    fn go_unknown_validator() {
        let text = TRADE_GO.replace("required,min=1,max=5", "required,alpha,max=5");
        insta::assert_snapshot!("go_unknown_validator", go_err(&text));
    }

    #[test]
    fn go_embedded_and_nested_structs() {
        let embedded = TRADE_GO.replace("type Trade struct {\n", "type Trade struct {\n\tBase\n");
        insta::assert_snapshot!("go_embedded", go_err(&embedded));
        let nested = TRADE_GO.replace(
            "TradedAt    time.Time `json:\"traded_at\"`",
            "Venue struct{ Name string }",
        );
        insta::assert_snapshot!("go_nested", go_err(&nested));
    }

    #[test]
    fn huge_and_deep_inputs_fail_fast() {
        let unclosed = format!("package x\n{}", "type A struct {\n".repeat(50_000));
        assert!(Contract::from_go("big.go", &unclosed).is_err());
        let deep = format!(
            "package x\n// @contract_version:\"1\"\ntype A struct {{\n\tX {}int\n}}\n",
            "*".repeat(100_000)
        );
        insta::assert_snapshot!("go_deep_type", go_err(&deep));
        assert!(Contract::from_yaml("deep.yaml", &"[".repeat(100_000)).is_err());
        assert!(Contract::from_yaml("deep.yaml", &"- ".repeat(100_000)).is_err());
    }

    #[test]
    fn go_bad_regex_and_tag() {
        let text = TRADE_GO.replace("pattern:\"^T[0-9]{7}$\"", "pattern:\"^T[0-9{7}$\"");
        insta::assert_snapshot!("go_bad_regex", go_err(&text));
        let text = TRADE_GO.replace("json:\"symbol\" ", "json:symbol ");
        insta::assert_snapshot!("go_malformed_tag", go_err(&text));
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = Contract::from_yaml("p.yaml", &text);
            let _ = Contract::from_go("p.go", &text);
        }

        #[test]
        fn mangled_examples_never_panic(
            at in 0usize..2000,
            cut in 0usize..40,
            insert in "[-:{}\\[\\]`\"' \n\t#*/a-z0-9@=,]{0,8}",
        ) {
            for (file, text) in [("p.yaml", TRADE_YAML), ("p.go", TRADE_GO)] {
                let mut s: Vec<char> = text.chars().collect();
                let at = at % (s.len() + 1);
                let end = (at + cut).min(s.len());
                s.splice(at..end, insert.chars());
                let s: String = s.into_iter().collect();
                match Contract::load(file, &s) {
                    Ok(c) => { let _ = c.hash(); }
                    Err(ContractError::Syntax { line, column, .. }) => {
                        prop_assert!(line >= 1 && column >= 1);
                    }
                    Err(e) => prop_assert!(false, "unexpected error kind: {e}"),
                }
            }
        }

        /// Short lists of valid strings are compared with `eq`, long ones looked up: either
        /// way exactly the non-null values outside the list are violations, as text or views.
        #[test]
        fn valid_strings_are_exactly_those_listed(
            allowed in proptest::collection::btree_set("[abc]{0,3}|é", 1..40),
            values in proptest::collection::vec(proptest::option::of("[abcd]{0,3}|é"), 0..60),
            views in any::<bool>(),
        ) {
            let list = allowed
                .iter()
                .map(|v| format!("'{v}'"))
                .collect::<Vec<_>>()
                .join(", ");
            let yaml = format!(
                "id: s\nversion: 1.0.0\nschema:\n  - name: s\n    properties:\n      \
                 - name: code\n        logicalType: string\n        enum: [{list}]\n"
            );
            let contract = Contract::from_yaml("s.yaml", &yaml).unwrap();
            let (data_type, column): (DataType, ArrayRef) = if views {
                (DataType::Utf8View, Arc::new(StringViewArray::from(values.clone())))
            } else {
                (DataType::Utf8, Arc::new(StringArray::from(values.clone())))
            };
            let schema = Schema::new(vec![ArrowField::new("code", data_type, true)]);
            let mut checker = Checker::new(&contract, &schema).unwrap();
            let batch = RecordBatch::try_new(Arc::new(schema), vec![column]).unwrap();
            let out = checker.check(&batch).unwrap();
            let got: Vec<bool> = violations(&out.violations)
                .iter()
                .map(|v| v.iter().any(|(rule, _, _)| rule == "valid_values"))
                .collect();
            let want: Vec<bool> = values
                .iter()
                .map(|v| v.as_ref().is_some_and(|v| !allowed.contains(v)))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}

mod drift {
    use arrow::datatypes::DataType;
    use runink_contracts::diff;

    use super::{trade_go, trade_yaml};

    fn messages(d: &runink_contracts::ContractDiff) -> Vec<(String, bool)> {
        d.changes
            .iter()
            .map(|c| (c.message.clone(), c.breaking))
            .collect()
    }

    #[test]
    fn the_same_contract_in_both_forms_has_no_drift() {
        let d = diff(&trade_yaml(), &trade_go());
        assert!(d.changes.is_empty(), "{d:?}");
        assert!(!d.is_breaking());
    }

    /// Reordering changes the hash, so the diff names it, as a change that breaks nothing.
    #[test]
    fn reordered_fields_and_valid_values_are_reported() {
        let old = trade_yaml();
        let mut new = old.clone();
        new.fields.swap(0, 1);
        let side = new.fields.iter_mut().find(|f| f.name == "side").unwrap();
        side.valid_values = Some(vec!["SELL".into(), "BUY".into()]);
        assert_ne!(old.hash(), new.hash());
        let d = diff(&old, &new);
        assert_eq!(
            messages(&d),
            vec![
                (
                    "`side` lists its valid values in another order".to_string(),
                    false
                ),
                (
                    "fields reordered: trade_id, symbol, side, quantity, price, trader_email, traded_at -> symbol, trade_id, side, quantity, price, trader_email, traded_at".to_string(),
                    false
                ),
            ]
        );
        assert!(!d.is_breaking());
    }

    #[test]
    fn loosening_is_not_breaking_but_a_new_field_is() {
        let old = trade_yaml();
        let mut new = old.clone();
        new.version = "1.3.0".into();
        let side = new.fields.iter_mut().find(|f| f.name == "side").unwrap();
        side.valid_values = Some(vec!["BUY".into(), "SELL".into(), "SHORT".into()]);
        let price = new.fields.iter_mut().find(|f| f.name == "price").unwrap();
        price.maximum = Some(1_000_000.0);
        let quantity = new
            .fields
            .iter_mut()
            .find(|f| f.name == "quantity")
            .unwrap();
        quantity.data_type = DataType::Int64;
        let mut venue = new.fields[1].clone();
        venue.name = "venue".into();
        venue.required = false;
        venue.unique = false;
        venue.primary_key = false;
        new.fields.push(venue);
        let d = diff(&old, &new);
        assert_eq!(
            messages(&d),
            vec![
                ("`side` now also allows SHORT".to_string(), false),
                ("`price` maximum 100000 -> 1000000".to_string(), false),
                ("field `venue` added (Utf8, optional)".to_string(), true),
                (
                    "breaking changes without a new major version (1.2.0 -> 1.3.0)".to_string(),
                    true
                ),
            ]
        );
        new.fields.retain(|f| f.name != "venue");
        assert!(!diff(&old, &new).is_breaking());
    }

    #[test]
    fn breaking_changes_are_named_and_need_a_major_version() {
        let old = trade_yaml();
        let mut new = old.clone();
        new.version = "1.3.0".into();
        new.fields.retain(|f| f.name != "traded_at");
        let email = new
            .fields
            .iter_mut()
            .find(|f| f.name == "trader_email")
            .unwrap();
        email.classification = None;
        let side = new.fields.iter_mut().find(|f| f.name == "side").unwrap();
        side.valid_values = Some(vec!["BUY".into()]);
        let qty = new
            .fields
            .iter_mut()
            .find(|f| f.name == "quantity")
            .unwrap();
        qty.data_type = DataType::Int32;
        let d = diff(&old, &new);
        assert!(d.is_breaking());
        assert_eq!(
            messages(&d),
            vec![
                ("`side` no longer allows SELL".to_string(), true),
                ("`quantity` type Int64 -> Int32".to_string(), true),
                (
                    "`trader_email` lost its classification `pii`".to_string(),
                    true
                ),
                ("field `traded_at` removed".to_string(), true),
                (
                    "breaking changes without a new major version (1.2.0 -> 1.3.0)".to_string(),
                    true
                ),
            ]
        );
        new.version = "2.0.0".into();
        assert_eq!(diff(&old, &new).changes.len(), 4);
        // A lower major version, or none that can be read, announces no break (and a lower
        // one is named).
        for (version, changes) in [("0.5.0", 6), ("latest", 5)] {
            new.version = version.into();
            let d = diff(&old, &new);
            assert_eq!(d.changes.len(), changes, "{version}: {:?}", messages(&d));
            assert!(
                d.changes[changes - 1]
                    .message
                    .contains("without a new major version"),
                "{version}"
            );
        }
        let mut back = old.clone();
        back.version = "1.1.9".into();
        assert_eq!(
            messages(&diff(&old, &back)),
            vec![("version goes back: 1.2.0 -> 1.1.9".to_string(), false)]
        );
    }
}

mod unique_semantics {
    use std::sync::Arc;

    use arrow::array::{Float64Array, RecordBatch, StringArray};

    use super::trade_yaml;
    use runink_contracts::Checker;

    /// A row rejected for another rule does not claim its key: the later valid row with the
    /// same `trade_id` is accepted, so the valid output holds exactly one row per key.
    #[test]
    fn a_rejected_row_does_not_claim_its_key() {
        let contract = trade_yaml();
        let schema = Arc::new(contract.arrow_schema());
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let columns: Vec<arrow::array::ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> arrow::array::ArrayRef {
                match f.name().as_str() {
                    "trade_id" => {
                        Arc::new(StringArray::from(vec!["T0000001", "T0000001", "T0000001"]))
                    }
                    "symbol" => Arc::new(StringArray::from(vec!["AAPL", "AAPL", "AAPL"])),
                    "side" => Arc::new(StringArray::from(vec!["HOLD", "BUY", "SELL"])),
                    "price" => Arc::new(Float64Array::from(vec![1.0, 1.0, 1.0])),
                    _ => arrow::array::new_null_array(f.data_type(), 3),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let out = checker.check(&batch).unwrap();
        let valid: Vec<bool> = out.valid.iter().map(|v| v.unwrap()).collect();
        assert_eq!(valid, vec![false, true, false]);
        assert_eq!(out.counts.get("side:valid_values"), Some(&1));
        assert_eq!(out.counts.get("trade_id:unique"), Some(&1));
    }
}

/// Inputs from a black-box review of contracts (session 11), each once wrong.
mod review_e {
    use super::*;

    /// One string column `x` checked against a one-column contract; (valid, messages).
    fn check_text(property: &str, values: Vec<Option<&str>>) -> (Vec<bool>, Vec<String>) {
        let yaml = format!(
            "id: t\nversion: 1.0.0\nschema:\n  - name: t\n    properties:\n      - {property}\n"
        );
        let contract = Contract::load("t.yaml", &yaml).unwrap();
        let schema = Arc::new(Schema::new(vec![ArrowField::new(
            "x",
            DataType::Utf8,
            true,
        )]));
        let mut checker = Checker::new(&contract, &schema).unwrap();
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values))]).unwrap();
        let out = checker.check(&batch).unwrap();
        let valid = (0..out.valid.len()).map(|i| out.valid.value(i)).collect();
        let lists = &out.violations;
        let mut messages = Vec::new();
        for i in 0..lists.len() {
            let items = lists.value(i);
            let items = items.as_struct();
            let text = items.column_by_name("message").unwrap().as_string::<i32>();
            messages.extend((0..text.len()).map(|k| text.value(k).to_string()));
        }
        (valid, messages)
    }

    /// Arrow reads `12:30:60` as 12:31:00 and `23:59:60` as a time past the day's end that
    /// no sink could write.
    #[test]
    fn a_sixtieth_second_in_a_time_is_a_type_violation() {
        let (valid, messages) = check_text(
            "{ name: x, logicalType: time }",
            vec![
                Some("12:30:60"),
                Some("23:59:60"),
                Some("12:30:59.5"),
                Some("23:59:60.25"),
            ],
        );
        assert_eq!(valid, [false, false, true, false]);
        assert_eq!(
            messages[0],
            "value \"12:30:60\" is not a valid Time64(Microsecond)"
        );
    }

    /// Arrow reads text without a `:` as a count of the time unit, in the day or not: a
    /// valid row that no sink could write.
    #[test]
    fn a_time_is_written_with_colons_and_within_the_day() {
        let (valid, _) = check_text(
            "{ name: x, logicalType: time }",
            vec![
                Some("86400000000"),
                Some("-1"),
                Some("12"),
                Some("00:00:00"),
                Some("23:59:59.999999"),
            ],
        );
        assert_eq!(valid, [false, false, false, true, true]);
    }

    /// Bounds of temporal columns are written as their data is.
    #[test]
    fn temporal_bounds_are_written_as_their_data() {
        for (logical, bound) in [
            ("time", "'2024'"),
            ("time", "'23:59:60'"),
            ("date", "'2024-01-01T23:59:00'"),
            ("timestamp", "'2024'"),
        ] {
            let text = err_text(Contract::load(
                "b.yaml",
                &format!(
                    "id: b\nversion: 1.0.0\nschema:\n  - name: b\n    properties:\n      - {{ name: x, logicalType: {logical}, logicalTypeOptions: {{ maximum: {bound} }} }}\n"
                ),
            ));
            assert!(
                text.contains("`maximum` of `x` is"),
                "{logical} {bound}: {text}"
            );
        }
        for (logical, bound) in [
            ("time", "'09:30:00'"),
            ("date", "'2024-01-31'"),
            ("timestamp", "'2024-01-31'"),
        ] {
            Contract::load(
                "b.yaml",
                &format!("id: b\nversion: 1.0.0\nschema:\n  - name: b\n    properties:\n      - {{ name: x, logicalType: {logical}, logicalTypeOptions: {{ maximum: {bound} }} }}\n"),
            )
            .unwrap();
        }
    }

    /// `1e309` is a finite number too large for a double, as `3.4e39` is for a float; only
    /// infinity spelled out is infinity.
    #[test]
    fn text_too_large_for_a_double_is_a_type_violation() {
        let (valid, _) = check_text(
            "{ name: x, logicalType: number }",
            vec![
                Some("1e309"),
                Some("-1e309"),
                Some("inf"),
                Some("-Infinity"),
                Some("1e308"),
            ],
        );
        assert_eq!(valid, [false, false, true, true, true]);
    }

    /// Decimals from text in exponent notation were `type` violations though they fit;
    /// integers took them already.
    #[test]
    fn decimals_read_exponent_notation_exactly() {
        let (valid, messages) = check_text(
            "{ name: x, logicalType: number, physicalType: \"decimal(5,2)\" }",
            [
                "1e2", "0.1e-1", "-2.5E1", "1e3", "1.2345e1", "12.5", "1e999",
            ]
            .map(Some)
            .to_vec(),
        );
        // 1000 needs 4 integer digits of 3; 12.345 has 3 decimals of 2; 1e999 is no decimal.
        assert_eq!(valid, [true, true, true, false, false, true, false]);
        assert_eq!(messages[0], "value \"1e3\" is not a valid Decimal128(5, 2)");
    }

    /// NaN lies within no bound: before, it passed a minimum and failed a maximum.
    #[test]
    fn nan_is_within_no_bound() {
        let (valid, messages) = check_text(
            "{ name: x, logicalType: number, logicalTypeOptions: { minimum: 0 } }",
            vec![Some("NaN"), Some("1"), Some("-1")],
        );
        assert_eq!(valid, [false, true, false]);
        assert_eq!(
            messages[0],
            "value NaN is not a number, so not within minimum 0"
        );
        let (valid, _) = check_text(
            "{ name: x, logicalType: number, logicalTypeOptions: { exclusiveMaximum: 5 } }",
            vec![Some("NaN"), Some("4")],
        );
        assert_eq!(valid, [false, true]);
    }

    /// Arrow also reads `tru`, `fals`, `ye` and `of` as booleans; the docs list whole words.
    #[test]
    fn booleans_are_whole_words() {
        let (valid, _) = check_text(
            "{ name: x, logicalType: boolean }",
            [
                "true", "F", " yes ", "n", "ON", "off", "1", "0", "tru", "fals", "ye", "of",
                "maybe",
            ]
            .map(Some)
            .to_vec(),
        );
        assert_eq!(
            valid,
            [
                true, true, true, true, true, true, true, true, false, false, false, false, false
            ]
        );
    }

    /// A `required` member of an object is not enforced (nested rules are not), so it must
    /// not make the member non-nullable: data with a null there failed the whole run.
    #[test]
    fn a_required_member_of_an_object_stays_nullable() {
        let yaml = "id: o\nversion: 1.0.0\nschema:\n  - name: o\n    properties:\n      - name: addr\n        logicalType: object\n        properties:\n          - { name: city, logicalType: string, required: true }\n          - { name: zip, logicalType: integer }\n";
        let with = Contract::load("o1.yaml", yaml).unwrap();
        let without = Contract::load("o2.yaml", &yaml.replace(", required: true", "")).unwrap();
        let DataType::Struct(members) = with.arrow_schema().field(0).data_type().clone() else {
            panic!("not a struct");
        };
        assert!(members.iter().all(|m| m.is_nullable()));
        assert_eq!(with.hash(), without.hash());
        assert!(runink_contracts::diff(&with, &without).changes.is_empty());
    }

    /// `version: 1.10` is the text as written, not the number 1.1; so it hashes as the Go
    /// form's `@contract_version:"1.10"` does.
    #[test]
    fn a_numeric_version_is_kept_as_written() {
        for (written, kept) in [
            ("1.10", "1.10"),
            ("2", "2"),
            ("'1.10'", "1.10"),
            ("1.0", "1.0"),
        ] {
            let c = Contract::load(
                "v.yaml",
                &format!("id: v\nversion: {written}\nschema:\n  - name: v\n    properties:\n      - {{ name: a, logicalType: string }}\n"),
            )
            .unwrap();
            assert_eq!(c.version, kept, "version: {written}");
        }
    }

    /// Date bounds are ISO text; a number was taken as days since 1970.
    #[test]
    fn a_numeric_bound_on_a_date_is_an_error() {
        let text = err_text(Contract::load(
            "d.yaml",
            "id: d\nversion: 1.0.0\nschema:\n  - name: d\n    properties:\n      - name: d\n        logicalType: date\n        logicalTypeOptions: { minimum: 2024 }\n",
        ));
        assert!(
            text.starts_with("d.yaml:8:31:")
                && text.contains("`minimum` of `d` is the number 2024; bounds of date columns are ISO text, such as \"2024-01-31\""),
            "{text}"
        );
    }

    /// `contract diff` showed date bounds as days since 1970.
    #[test]
    fn diff_shows_date_bounds_as_dates() {
        let c = |min: &str| {
            Contract::load(
                "d.yaml",
                &format!("id: d\nversion: 1.0.0\nschema:\n  - name: d\n    properties:\n      - {{ name: d, logicalType: date, logicalTypeOptions: {{ minimum: \"{min}\" }} }}\n"),
            )
            .unwrap()
        };
        let d = runink_contracts::diff(&c("2024-01-01"), &c("2023-01-01"));
        let messages: Vec<&str> = d.changes.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(messages, ["`d` minimum 2024-01-01 -> 2023-01-01"]);
    }

    /// A flow collection nested 100 000 deep took minutes to refuse; now it is refused at
    /// once, where it goes too deep.
    #[test]
    fn deeply_nested_yaml_is_refused_where_it_goes_too_deep() {
        let deep = format!(
            "id: x\nversion: 1\nschema: [{{name: t, properties: [{{name: a, examples: {}{}}}]}}]\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let text = err_text(Contract::load("deep.yaml", &deep));
        assert!(
            text.starts_with("deep.yaml:3:") && text.contains("nest deeper than 100 levels"),
            "{text}"
        );
        // Brackets inside quotes and comments are text, not nesting.
        let quoted = format!(
            "id: x # {}\nversion: 1\ndescription: '{}'\nschema:\n  - name: t\n    properties:\n      - {{ name: a, logicalType: string, description: \"{}\" }}\n",
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200)
        );
        Contract::load("quoted.yaml", &quoted).unwrap();
    }

    /// `primaryKey: true` silently overrode an explicit `required: false`.
    #[test]
    fn a_primary_key_that_says_it_is_not_required_is_an_error() {
        for key in ["required", "unique"] {
            let text = err_text(Contract::load(
                "k.yaml",
                &format!(
                    "id: k\nversion: 1.0.0\nschema:\n  - name: k\n    properties:\n      - name: id\n        logicalType: string\n        primaryKey: true\n        {key}: false\n"
                ),
            ));
            assert!(
                text.starts_with("k.yaml:9:") && text.contains(&format!("says `{key}: false`")),
                "{text}"
            );
        }
    }

    /// An unclosed quote in `oneof` was read as one value.
    #[test]
    fn an_unclosed_quote_in_oneof_is_an_error() {
        let text = err_text(Contract::load(
            "s.go",
            "package m\n\n// @contract_version:\"1.0.0\"\ntype S struct {\n\tSide string `json:\"side\" validate:\"oneof='A B\"`\n}\n",
        ));
        assert!(text.contains("has a quote that is not closed"), "{text}");
        assert!(text.starts_with("s.go:5:"), "{text}");
    }
}
