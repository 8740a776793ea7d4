//! Runink's operators cross to slices through `RuninkPhysicalCodec`, and their counters come
//! back as metrics that `RunContext::set_totals` adds up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use datafusion_proto::physical_plan::{DefaultPhysicalProtoConverter, PhysicalExtensionCodec};
use runink_contracts::Contract;
use runink_engine::enforce::{ContractEnforceExec, EnforceMode};
use runink_engine::lineage::{LineageTapExec, TapKind};
use runink_engine::run::RunContext;
use runink_planner::codec::RuninkPhysicalCodec;

const CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: trade
version: 1.0.0
status: active
schema:
  - name: trades
    properties:
      - name: trade_id
        logicalType: string
        required: true
        unique: true
      - name: quantity
        logicalType: integer
        logicalTypeOptions:
          minimum: 1
"#;

fn input() -> Arc<dyn ExecutionPlan> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("trade_id", DataType::Utf8, true),
        Field::new("quantity", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                Some("a"),
                None,
            ])),
            Arc::new(Int64Array::from(vec![5, 0, 3, 2])),
        ],
    )
    .unwrap();
    MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None).unwrap()
}

/// Encodes `node` (its input is encoded apart, as datafusion-proto does) and decodes it
/// over `input`.
fn round_trip(
    node: Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    let converter = DefaultPhysicalProtoConverter {};
    let mut buf = Vec::new();
    RuninkPhysicalCodec
        .try_encode(node, &mut buf, &converter)
        .unwrap();
    RuninkPhysicalCodec
        .try_decode(
            &buf,
            &[input],
            &SessionContext::new().task_ctx(),
            &converter,
        )
        .unwrap()
}

#[tokio::test]
async fn operators_cross_the_codec_and_count_through_metrics() {
    let contract = Arc::new(Contract::load("trade.yaml", CONTRACT).unwrap());
    let tap: Arc<dyn ExecutionPlan> = Arc::new(LineageTapExec::new(
        input(),
        "trades",
        TapKind::Source,
        Default::default(),
    ));
    let enforce: Arc<dyn ExecutionPlan> = Arc::new(
        ContractEnforceExec::try_new(
            Arc::clone(&tap),
            contract,
            EnforceMode::Annotate,
            "trades",
            Default::default(),
        )
        .unwrap(),
    );
    let decoded_tap = round_trip(tap, input());
    let decoded = round_trip(Arc::clone(&enforce), decoded_tap);
    // The same operators, as EXPLAIN shows them.
    assert_eq!(
        displayable(decoded.as_ref()).indent(false).to_string(),
        displayable(enforce.as_ref()).indent(false).to_string()
    );

    let batches = collect(Arc::clone(&decoded), SessionContext::new().task_ctx())
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);

    // Only the decoded copy ran; the run adds up what the plan's metrics say, rule by rule.
    let run = RunContext::new("test");
    run.set_totals(&decoded);
    let report = run.report(0);
    assert_eq!(report.sources.len(), 1);
    assert_eq!(report.sources[0].name, "trades");
    assert_eq!(report.sources[0].rows, 4);
    let c = &report.contracts[0];
    assert_eq!((c.rows, c.valid, c.rejected), (4, 1, 3));
    assert_eq!(c.rejected_per_rule.get("trade_id:unique"), Some(&1));
    assert_eq!(c.rejected_per_rule.get("trade_id:required"), Some(&1));
    assert_eq!(c.rejected_per_rule.get("quantity:minimum"), Some(&1));
}

#[test]
fn bad_operator_bytes_are_an_error_not_a_panic() {
    let converter = DefaultPhysicalProtoConverter {};
    let ctx = SessionContext::new().task_ctx();
    let sinks = br#"{"node":"sinks","sinks":[],"input_of":[],"predicates":[]}"#;
    for bytes in [&b"not json"[..], br#"{"node":"lineage_tap"}"#, sinks] {
        let err = RuninkPhysicalCodec
            .try_decode(bytes, &[input()], &ctx, &converter)
            .unwrap_err()
            .to_string();
        assert!(err.contains("runink codec"), "{err}");
    }
    // A tap has one input.
    let tap = br#"{"node":"lineage_tap","relation":"t","kind":"source"}"#;
    let err = RuninkPhysicalCodec
        .try_decode(tap, &[], &ctx, &converter)
        .unwrap_err()
        .to_string();
    assert!(err.contains("takes one input"), "{err}");
}
